// Package fault injects latency and errors into the backend's own RPCs, for
// load and failure experiments. Health and reflection are never affected, so
// probes keep telling the truth about the process.
package fault

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/knowingnode/knowingnode/internal/config"
	"github.com/knowingnode/knowingnode/internal/grpccode"
)

// Config describes the faults; the zero value injects none.
type Config struct {
	Latency   time.Duration // added to every call
	Jitter    time.Duration // plus a uniform random extra in [0, Jitter)
	ErrorRate float64       // fraction of calls, 0..1, that fail
	ErrorCode codes.Code    // the code they fail with
}

// MethodPrefix selects the RPCs faults apply to.
const MethodPrefix = "/knowingnode.v1."

// Enabled reports whether c injects anything.
func (c Config) Enabled() bool { return c.Latency > 0 || c.Jitter > 0 || c.ErrorRate > 0 }

// Register adds the fault-injection flags to s. The error code defaults to
// UNAVAILABLE.
func (c *Config) Register(s *config.Set) {
	c.ErrorCode = codes.Unavailable
	s.Duration(&c.Latency, "fault-latency", "FAULT_LATENCY", 0, "fault injection: latency added to every Identity call")
	s.Duration(&c.Jitter, "fault-jitter", "FAULT_JITTER", 0, "fault injection: plus a uniformly random latency up to this")
	s.Float(&c.ErrorRate, "fault-error-rate", "FAULT_ERROR_RATE", 0, "fault injection: fraction 0..1 of Identity calls that fail")
	s.Var(CodeFlag{Code: &c.ErrorCode}, "fault-error-code", "FAULT_ERROR_CODE", "fault injection: the gRPC code of injected failures (default UNAVAILABLE)")
}

// Validate checks c's ranges. A pointer receiver, so that the method value
// taken before parsing sees what parsing fills in.
func (c *Config) Validate() error {
	switch {
	case c.Latency < 0 || c.Latency > time.Minute:
		return fmt.Errorf("invalid value for flag -fault-latency: %v is outside 0s..1m", c.Latency)
	case c.Jitter < 0 || c.Jitter > time.Minute:
		return fmt.Errorf("invalid value for flag -fault-jitter: %v is outside 0s..1m", c.Jitter)
	case !(c.ErrorRate >= 0 && c.ErrorRate <= 1): // NaN too
		return fmt.Errorf("invalid value for flag -fault-error-rate: %v is outside 0..1", c.ErrorRate)
	case c.ErrorRate > 0 && c.ErrorCode == codes.OK:
		return fmt.Errorf("invalid value for flag -fault-error-code: OK cannot be an injected error")
	}
	return nil
}

// Interceptor injects c's faults. rnd returns uniform numbers in [0,1); nil
// means math/rand/v2.
func Interceptor(c Config, rnd func() float64) grpc.UnaryServerInterceptor {
	if rnd == nil {
		rnd = rand.Float64
	}
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		if !strings.HasPrefix(info.FullMethod, MethodPrefix) {
			return h(ctx, req)
		}
		if d := c.Latency + time.Duration(rnd()*float64(c.Jitter)); d > 0 {
			t := time.NewTimer(d)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				return nil, status.FromContextError(ctx.Err()).Err()
			}
		}
		if c.ErrorRate > 0 && rnd() < c.ErrorRate {
			return nil, status.Errorf(c.ErrorCode, "injected fault (error rate %g)", c.ErrorRate)
		}
		return h(ctx, req)
	}
}

// CodeFlag is a flag.Value holding a gRPC code.
type CodeFlag struct{ Code *codes.Code }

func (f CodeFlag) String() string {
	if f.Code == nil {
		return ""
	}
	return grpccode.Name(*f.Code)
}

// Set parses a code name or number.
func (f CodeFlag) Set(s string) error {
	c, err := grpccode.Parse(s)
	if err != nil {
		return err
	}
	*f.Code = c
	return nil
}
