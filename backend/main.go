// Command backend is the knowing node: a gRPC server that tells who and where
// it runs, from the Kubernetes Downward API.
package main

import (
	"context"
	"fmt"
	"io"
	"os"

	"google.golang.org/grpc/codes"

	"github.com/knowingnode/knowingnode/backend/fault"
	"github.com/knowingnode/knowingnode/backend/loadreport"
	knowingnodev1 "github.com/knowingnode/knowingnode/gen/knowingnode/v1"
	"github.com/knowingnode/knowingnode/internal/config"
	"github.com/knowingnode/knowingnode/internal/serve"
	"github.com/knowingnode/knowingnode/internal/tier"
)

type flags struct {
	tier  tier.Config
	fault fault.Config
	load  loadreport.Config
}

func parseFlags(args []string) *flags {
	f := &flags{fault: fault.Config{ErrorCode: codes.Unavailable}}
	s := config.New("backend")
	f.tier.Register(s, ":9091")
	s.Duration(&f.fault.Latency, "fault-latency", "FAULT_LATENCY", 0, "fault injection: latency added to every Identity call")
	s.Duration(&f.fault.Jitter, "fault-jitter", "FAULT_JITTER", 0, "fault injection: plus a uniformly random latency up to this")
	s.Float(&f.fault.ErrorRate, "fault-error-rate", "FAULT_ERROR_RATE", 0, "fault injection: fraction 0..1 of Identity calls that fail")
	s.Var(fault.CodeFlag{Code: &f.fault.ErrorCode}, "fault-error-code", "FAULT_ERROR_CODE", "fault injection: the gRPC code of injected failures (default UNAVAILABLE)")
	f.load.Register(s)
	// A closure, not the method value f.fault.Validate, which would copy the
	// config before parsing fills it.
	s.ParseOrExit(args, f.tier.Validate, func() error { return f.fault.Validate() }, f.load.Validate)
	return f
}

func main() {
	f := parseFlags(os.Args[1:])
	tier.Main("backend", func(ctx context.Context) error { return run(ctx, f, os.Stderr) })
}

func run(ctx context.Context, f *flags, logw io.Writer) error {
	// The load report wraps fault injection, so injected failures and
	// latency are in the rates it reports.
	lr := loadreport.New(f.load)
	defer lr.Close()
	opts := []serve.Option{serve.WithServerOptions(lr.ServerOptions()...)}
	if f.fault.Enabled() {
		opts = append(opts, serve.WithUnaryInterceptors(fault.Interceptor(f.fault, nil)))
	}
	t, err := tier.New(ctx, f.tier, knowingnodev1.Tier_TIER_BACKEND, logw, opts...)
	if err != nil {
		return err
	}
	if f.fault.Enabled() {
		t.Log.Warn("fault injection on", "latency", f.fault.Latency, "jitter", f.fault.Jitter,
			"error_rate", f.fault.ErrorRate, "error_code", fault.CodeFlag{Code: &f.fault.ErrorCode}.String())
	}
	if err := lr.Register(t.Server.GRPC, t.Server.Stopping()); err != nil {
		t.Stop()
		return fmt.Errorf("ORCA service: %w", err)
	}
	if !f.load.Off {
		t.Log.Info("ORCA load reports on", "cpu", lr.CPUSource(), "utilization", f.load.Utilization, "capacity", f.load.Capacity, "interval", f.load.Interval.String())
	}
	return t.Run(ctx)
}
