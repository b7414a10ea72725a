package fanout

import (
	"context"
	"log/slog"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	knowingnodev1 "github.com/knowingnode/knowingnode/gen/knowingnode/v1"
	"github.com/knowingnode/knowingnode/internal/grpccode"
)

// FanOut calls the backends of one target.
func (s *Service) FanOut(ctx context.Context, req *knowingnodev1.FanOutRequest) (*knowingnodev1.FanOutResponse, error) {
	return s.fanOutEach(ctx, req, nil)
}

// fanOutEach is FanOut, calling onResult (when not nil) with each EACH
// result as it arrives, from the goroutine that made the call: FanOutStream
// streams them.
func (s *Service) fanOutEach(ctx context.Context, req *knowingnodev1.FanOutRequest, onResult func(*knowingnodev1.BackendResult)) (*knowingnodev1.FanOutResponse, error) {
	// Normalised once, before any metric: a request without a mode is
	// labelled EACH whether it fails or succeeds.
	mode := normaliseMode(req.GetMode())
	name := req.GetTarget()
	if name == "" {
		name = s.def
	}
	e, ok := s.targets[name]
	if !ok {
		// The label is fixed: names from requests must not mint series.
		s.opts.Metrics.rejected("unknown", modeLabel(mode), "error")
		return nil, status.Errorf(codes.NotFound, "unknown target %q; configured targets: %s", name, strings.Join(s.names, ", "))
	}
	if !s.enter() {
		s.opts.Metrics.refused(name, modeLabel(mode), limitShuttingDown)
		return nil, status.Error(codes.Unavailable, "frontend shutting down: no new fan-outs")
	}
	defer s.running.Done()
	resp, err := s.fanOut(ctx, name, e, mode, req, onResult)
	if err != nil && status.Code(err) != codes.ResourceExhausted {
		s.opts.Metrics.rejected(name, modeLabel(mode), "error")
	}
	return resp, err
}

// Names of the admission limits, in metrics and in errors.
const (
	limitFanOuts      = "fanouts"
	limitBackendCalls = "backend_calls"
	limitShuttingDown = "shutting_down"
)

// admit reserves one fan-out slot and width backend calls in flight, or
// refuses at once. release undoes it.
func (s *Service) admit(name string, mode knowingnodev1.FanOutMode, width int) (release func(), err error) {
	if s.fanOuts != nil && !s.fanOuts.TryAcquire(1) {
		s.opts.Metrics.refused(name, modeLabel(mode), limitFanOuts)
		return nil, status.Errorf(codes.ResourceExhausted,
			"too many fan-outs: %d already running, the limit (max-fanouts); retry later", s.opts.MaxFanOuts)
	}
	if s.calls != nil && !s.calls.TryAcquire(int64(width)) {
		if s.fanOuts != nil {
			s.fanOuts.Release(1)
		}
		s.opts.Metrics.refused(name, modeLabel(mode), limitBackendCalls)
		return nil, status.Errorf(codes.ResourceExhausted,
			"too many backend calls in flight: this fan-out needs %d more and the limit (max-backend-calls) is %d; retry later", width, s.opts.MaxBackendCalls)
	}
	return func() {
		if s.calls != nil {
			s.calls.Release(int64(width))
		}
		if s.fanOuts != nil {
			s.fanOuts.Release(1)
		}
	}, nil
}

// checkRequest returns the request's call count, timeout and balancing
// policy, defaults filled in, or why it is refused. mode is normalised.
func (s *Service) checkRequest(mode knowingnodev1.FanOutMode, req *knowingnodev1.FanOutRequest) (count int, timeout time.Duration, pol policy, err error) {
	switch mode {
	case knowingnodev1.FanOutMode_FAN_OUT_MODE_EACH, knowingnodev1.FanOutMode_FAN_OUT_MODE_BALANCED:
	default:
		return 0, 0, 0, status.Errorf(codes.InvalidArgument, "mode %d is not a fan-out mode: want EACH or BALANCED", mode)
	}
	count = int(req.GetCount())
	if mode == knowingnodev1.FanOutMode_FAN_OUT_MODE_BALANCED && count == 0 {
		count = DefaultCount
	}
	if count < 0 || count > MaxCount {
		return 0, 0, 0, status.Errorf(codes.InvalidArgument, "count %d is out of range: want 0..%d (0: %d in BALANCED mode)", count, MaxCount, DefaultCount)
	}
	timeout = s.opts.DefaultTimeout
	if req.GetTimeout() != nil {
		if err := req.GetTimeout().CheckValid(); err != nil {
			return 0, 0, 0, status.Errorf(codes.InvalidArgument, "timeout: %v", err)
		}
		timeout = req.GetTimeout().AsDuration()
		if timeout <= 0 || timeout > MaxTimeout {
			return 0, 0, 0, status.Errorf(codes.InvalidArgument, "timeout %v is out of range: want more than 0s and at most %v", timeout, MaxTimeout)
		}
	}
	// Checked in EACH mode too, which ignores them: a bad name is a
	// mistake whatever the mode.
	if pol, err = parsePolicy(req.GetPolicy(), req.GetHashKeys()); err != nil {
		return 0, 0, 0, err
	}
	return count, timeout, pol, nil
}

func (s *Service) fanOut(ctx context.Context, name string, e *entry, mode knowingnodev1.FanOutMode, req *knowingnodev1.FanOutRequest, onResult func(*knowingnodev1.BackendResult)) (*knowingnodev1.FanOutResponse, error) {
	count, timeout, pol, err := s.checkRequest(mode, req)
	if err != nil {
		return nil, err
	}
	disc := e.state()
	backends := e.pool.Backends()
	if len(backends) == 0 {
		msg := "no endpoints discovered"
		if disc.LastError != "" {
			msg += "; last discovery error: " + disc.LastError
		}
		e.target.RefreshSoon()
		return nil, status.Errorf(codes.Unavailable, "target %q (%s): %s", name, disc.Query, msg)
	}
	// The calls this fan-out keeps in flight at most.
	width := max(s.opts.Concurrency, 1)
	if mode == knowingnodev1.FanOutMode_FAN_OUT_MODE_EACH {
		width = min(width, len(backends))
	} else {
		width = min(width, max(count, 1))
	}
	release, err := s.admit(name, mode, width)
	if err != nil {
		return nil, err
	}
	defer release()

	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	defer context.AfterFunc(s.stop, cancel)() // Close ends it
	start := time.Now()
	var (
		results []*knowingnodev1.BackendResult
		sent    []sample
	)
	if mode == knowingnodev1.FanOutMode_FAN_OUT_MODE_EACH {
		results = s.each(ctx, e.pool, backends, width, onResult)
		sent = eachSamples(results)
	} else {
		lb := &balancer{p: e.pool, policy: pol, keys: req.GetHashKeys(), wrr: s.opts.WRR.withDefaults()}
		results, sent = s.balanced(ctx, lb, count, width)
	}
	sum := summarize(results, sent, time.Since(start))
	e.metrics.observe(mode, e.pool.Has, len(backends), results, sent, sum)
	if sum.ByCode[grpccode.Name(codes.Unavailable)] > 0 || sum.ByCode[grpccode.Name(codes.DeadlineExceeded)] > 0 {
		e.target.RefreshSoon() // a backend may be gone: look again now
	}
	if s.log.Enabled(ctx, slog.LevelInfo) { // its arguments cost allocations
		s.log.InfoContext(ctx, "fan-out", "target", name, "mode", shortMode(mode), "policy", policyName(mode, pol), "backends", len(backends),
			"calls", sum.Total, "ok", sum.Ok, "failed", sum.Failed, "draining", sum.Draining, "not_sent", sum.NotSent,
			"duration", sum.Duration.AsDuration())
	}
	return &knowingnodev1.FanOutResponse{
		Frontend:  s.self,
		Target:    name,
		Mode:      mode,
		Results:   results,
		Summary:   sum,
		Discovery: disc,
		Policy:    policyName(mode, pol),
	}, nil
}

// policyName is the policy a fan-out names in its response: BALANCED's,
// none for EACH.
func policyName(mode knowingnodev1.FanOutMode, p policy) string {
	if mode != knowingnodev1.FanOutMode_FAN_OUT_MODE_BALANCED {
		return ""
	}
	return p.String()
}
