// Package load is the frontend's LoadService: it runs the load engine against
// the backends of a target configured at start-up and streams the windows,
// then the summary, to the caller. Loads are admission-controlled: a bounded
// rate and duration, and a bounded number at once.
package load

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/knowingnode/knowingnode/frontend/fanout"
	knowingnodev1 "github.com/knowingnode/knowingnode/gen/knowingnode/v1"
	"github.com/knowingnode/knowingnode/internal/config"
	"github.com/knowingnode/knowingnode/internal/discovery"
	"github.com/knowingnode/knowingnode/internal/load/calls"
	"github.com/knowingnode/knowingnode/internal/load/engine"
)

// Options are the admission limits and the shape of every load.
type Options struct {
	MaxRate       float64       // calls/s a load may ask for
	MaxDuration   time.Duration // how long a load may run
	MaxConcurrent int           // loads running at once on this frontend
	Concurrency   int           // calls in flight within one load
	Reports       int           // reports of ended loads kept, by run id; 0: none
	CallTimeout   time.Duration // timeout of one backend call
	Logger        *slog.Logger
	Metrics       *Metrics // nil for none

	// Stopping, when set, ends every running load once it is done (the
	// stop phase of a shutdown, serve.Server.Stopping): the summary so far,
	// marked cut, then UNAVAILABLE, so that no load holds the drain.
	Stopping context.Context
}

// Register adds the admission flags to s, with their defaults.
func (o *Options) Register(s *config.Set) {
	s.Float(&o.MaxRate, "load-max-rate", "LOAD_MAX_RATE", 500, "highest rate (calls/s) a LoadService/Run may ask for")
	// A gRPC load must fit in --max-connection-age-grace (the frontend
	// checks it): an aged connection gives its streams only the grace. The
	// HTTP write timeout is lifted for REST loads.
	s.Duration(&o.MaxDuration, "load-max-duration", "LOAD_MAX_DURATION", time.Minute, "longest duration a LoadService/Run may ask for")
	s.Int(&o.MaxConcurrent, "load-max-concurrent", "LOAD_MAX_CONCURRENT", 2, "loads running at once on this frontend; more are refused with RESOURCE_EXHAUSTED")
	s.Int(&o.Concurrency, "load-concurrency", "LOAD_CONCURRENCY", 64, "backend calls in flight at once within one load")
	s.Int(&o.Reports, "load-reports", "LOAD_REPORTS", 8, "HTML reports of the last loads kept in memory, for GET /v1/load/runs/{id}/report; 0: none")
}

// Validate checks the flags' ranges. A pointer receiver: the method value
// o.Validate, handed to config.ParseOrExit before parsing, must see the
// values parsing fills in, not a copy of the defaults.
func (o *Options) Validate() error {
	return errors.Join(
		config.Check(o.MaxRate > 0 && o.MaxRate <= engine.MaxRate, "load-max-rate", "%g is outside (0, %g]", o.MaxRate, float64(engine.MaxRate)),
		config.Check(o.MaxDuration > 0 && o.MaxDuration <= time.Hour, "load-max-duration", "%v is outside (0s, 1h]", o.MaxDuration),
		config.Check(o.MaxConcurrent >= 0 && o.MaxConcurrent <= 100, "load-max-concurrent", "%d is outside 0..100", o.MaxConcurrent),
		config.Check(o.Concurrency >= 1 && o.Concurrency <= engine.MaxConcurrency, "load-concurrency", "%d is outside 1..%d", o.Concurrency, engine.MaxConcurrency),
		config.Check(o.Reports >= 0 && o.Reports <= MaxReports, "load-reports", "%d is outside 0..%d", o.Reports, MaxReports),
	)
}

// Service serves knowingnode.v1.LoadService.
type Service struct {
	knowingnodev1.UnimplementedLoadServiceServer
	opts    Options
	log     *slog.Logger
	pools   map[string]*fanout.Pool
	watched map[string]watched // the discovery of a target, for the reports
	names   []string
	def     string
	running atomic.Int64
	reports *reports
}

type watched struct {
	t       *discovery.Target
	refresh time.Duration
}

// New returns a Service with no targets.
func New(o Options) *Service {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.CallTimeout <= 0 {
		o.CallTimeout = 2 * time.Second
	}
	if o.Stopping == nil {
		o.Stopping = context.Background() // never done
	}
	return &Service{opts: o, log: o.Logger, pools: map[string]*fanout.Pool{}, watched: map[string]watched{},
		reports: newReports(o.Reports)}
}

// Add makes the pool of a configured target loadable by its name; the first
// added is the default. Call before serving.
func (s *Service) Add(name string, p *fanout.Pool) {
	s.pools[name] = p
	s.names = append(s.names, name)
	if s.def == "" {
		s.def = name
	}
}

// Follow gives the reports of name's loads each pod's lifecycle as t, the
// target's discovery (refreshed every refresh), sees it: Ready, Serving,
// Terminating from EndpointSlices; appeared and gone from DNS. Call before
// serving.
func (s *Service) Follow(name string, t *discovery.Target, refresh time.Duration) {
	s.watched[name] = watched{t, refresh}
}

// SetDefault chooses the target used when a request names none.
func (s *Service) SetDefault(name string) {
	if _, ok := s.pools[name]; ok {
		s.def = name
	}
}

// Run loads the backends of req's target and streams windows, then the summary.
func (s *Service) Run(req *knowingnodev1.RunRequest, stream grpc.ServerStreamingServer[knowingnodev1.RunResponse]) error {
	name := req.GetTarget()
	if name == "" {
		name = s.def
	}
	pool, ok := s.pools[name]
	if !ok {
		return status.Errorf(codes.NotFound, "unknown target %q; configured targets: %s", name, strings.Join(s.names, ", "))
	}
	mode := req.GetMode()
	if mode == knowingnodev1.FanOutMode_FAN_OUT_MODE_UNSPECIFIED {
		mode = knowingnodev1.FanOutMode_FAN_OUT_MODE_EACH
	}
	if _, known := knowingnodev1.FanOutMode_name[int32(mode)]; !known {
		return status.Errorf(codes.InvalidArgument, "mode %d is not a fan-out mode: want EACH or BALANCED", mode)
	}
	if r := req.GetRate(); !(r > 0 && r <= s.opts.MaxRate) {
		return status.Errorf(codes.InvalidArgument, "rate %g is outside (0, %g]: the limit is this frontend's --load-max-rate", r, s.opts.MaxRate)
	}
	d := req.GetDuration().AsDuration()
	if req.GetDuration() == nil || d <= 0 || d > s.opts.MaxDuration {
		return status.Errorf(codes.InvalidArgument, "duration %v is outside (0s, %v]: the limit is this frontend's --load-max-duration", d, s.opts.MaxDuration)
	}
	// Admission: a slot, or a refusal naming the limit.
	if s.opts.Stopping.Err() != nil {
		s.opts.Metrics.refused(limitShuttingDown)
		return status.Error(codes.Unavailable, "frontend shutting down: no new loads")
	}
	if n := s.running.Add(1); n > int64(s.opts.MaxConcurrent) {
		s.running.Add(-1)
		s.opts.Metrics.refused(limitMaxConcurrent)
		return status.Errorf(codes.ResourceExhausted, "%d loads are already running on this frontend, the limit of --load-max-concurrent=%d; try again when one ends", n-1, s.opts.MaxConcurrent)
	}
	defer s.running.Add(-1)

	ctx, cancel := context.WithCancel(stream.Context())
	defer cancel()
	defer context.AfterFunc(s.opts.Stopping, cancel)()
	w := s.watched[name]
	rec := s.reports.start(describe(name, w.t, w.refresh, mode, req.GetRate(), d))
	var sum *engine.Stats
	if rec != nil {
		// Every window the engine closes is the report's, whether or not
		// the caller was still there to get it; the report is ready once
		// discovery is no longer followed.
		var following sync.WaitGroup
		defer func() { cancel(); following.Wait(); s.reports.end(rec, sum); s.opts.Metrics.kept(s.reports.kept()) }()
		if rec.desc.Discovery != "" {
			following.Go(func() { rec.follow(ctx, w.t) })
		}
	}
	pick, lb := pool.Pick, pool.Balanced()
	if rec != nil { // the report joins each call to the endpoint it reached
		pick = func(n uint64) knowingnodev1.IdentityServiceClient {
			if c := pool.Pick(n); c != nil {
				return peerClient{c}
			}
			return nil
		}
		lb = peerClient{lb}
	}
	if mode == knowingnodev1.FanOutMode_FAN_OUT_MODE_BALANCED {
		pick = func(uint64) knowingnodev1.IdentityServiceClient { return lb }
	}
	call := rec.record(calls.IdentityPick(pick))
	log := s.log.With("target", name, "mode", mode.String(), "rate", req.GetRate(), "duration", d)
	if rec != nil {
		log = log.With("run", rec.id)
	}
	log.Info("load started")
	runID := rec.ID()
	var sendErr error
	sum, err := engine.Run(ctx, engine.Config{Rate: req.GetRate(), Concurrency: s.opts.Concurrency, Duration: d, Timeout: s.opts.CallTimeout},
		call, func(w *engine.Stats) {
			rec.window(w)
			if sendErr != nil {
				return
			}
			if sendErr = stream.Send(&knowingnodev1.RunResponse{Result: &knowingnodev1.RunResponse_Window{Window: toProto(w)}, RunId: runID}); sendErr != nil {
				cancel() // the caller is gone: stop loading
			}
		})
	if err != nil && sendErr == nil && stream.Context().Err() == nil && s.opts.Stopping.Err() != nil && sum != nil {
		// Cut by the stop phase: the caller is still there, so it gets
		// what ran, and why it ended, before the stream ends.
		why := fmt.Sprintf("frontend shutting down: the load was cut after %v of %v", sum.Elapsed.Round(time.Millisecond), d)
		log.Info("load cut by shutdown", "sent", sum.Sent, "elapsed", sum.Elapsed)
		if err := stream.Send(&knowingnodev1.RunResponse{Result: &knowingnodev1.RunResponse_Summary{Summary: toProto(sum)}, Cut: why, RunId: runID}); err != nil {
			return err
		}
		return status.Error(codes.Unavailable, why)
	}
	if sendErr != nil || err != nil {
		log.Info("load stopped early", "error", errors.Join(sendErr, err))
		if stream.Context().Err() != nil {
			return status.FromContextError(stream.Context().Err()).Err()
		}
		if sendErr != nil {
			return sendErr
		}
		return status.Errorf(codes.Internal, "load: %v", err)
	}
	log.Info("load ended", "sent", sum.Sent, "ok", sum.OK, "failed", sum.Failed, "rate", fmt.Sprintf("%.1f", sum.Rate))
	return stream.Send(&knowingnodev1.RunResponse{Result: &knowingnodev1.RunResponse_Summary{Summary: toProto(sum)}, RunId: runID})
}

func toProto(s *engine.Stats) *knowingnodev1.LoadStats {
	return &knowingnodev1.LoadStats{
		Start:         timestamppb.New(s.Start),
		Elapsed:       durationpb.New(s.Elapsed),
		Length:        durationpb.New(s.Length),
		Sent:          s.Sent,
		Late:          s.Late,
		Dropped:       s.Dropped,
		Ok:            s.OK,
		Failed:        s.Failed,
		ByCode:        s.ByCode,
		Rate:          s.Rate,
		RequestedRate: s.RequestedRate,
		Latency: &knowingnodev1.LoadLatency{
			P50: durationpb.New(s.Latency.P50), P90: durationpb.New(s.Latency.P90),
			P99: durationpb.New(s.Latency.P99), Max: durationpb.New(s.Latency.Max),
		},
		ByPod:   s.ByPod,
		ByNode:  s.ByNode,
		ByZone:  s.ByZone,
		PodNode: s.PodNode,
	}
}
