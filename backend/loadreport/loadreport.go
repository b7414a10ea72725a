// Package loadreport makes the backend report its load with ORCA (Open
// Request Cost Aggregation), the load reports grpc-go's weighted_round_robin
// balancer weighs pods by: per call, in the endpoint-load-metrics-bin
// trailer, and out of band, on the xds.service.orca.v3.OpenRcaService
// stream. A report carries the CPU utilization (the container's cgroup
// against its quota, or the process against its CPUs), the rate of calls
// served and of failures, and an application utilization a pod can be told
// to claim, so that pods on one machine can differ.
package loadreport

import (
	"context"
	"errors"
	"io/fs"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	v3orcapb "github.com/cncf/xds/go/xds/data/orca/v3"
	v3orcaservicegrpc "github.com/cncf/xds/go/xds/service/orca/v3"
	v3orcaservicepb "github.com/cncf/xds/go/xds/service/orca/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/orca"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/knowingnode/knowingnode/internal/config"
)

// MethodPrefix selects the calls that are counted and carry a per-call
// report: the backend's own, not health checks or reflection.
const MethodPrefix = "/knowingnode.v1."

// Limits of the flags.
const (
	maxUtilization = 100 // ORCA utilizations may exceed 1; this bounds typos
	maxCapacity    = 1e7
	minInterval    = 10 * time.Millisecond
	maxInterval    = time.Minute
)

// Config says what the backend reports.
type Config struct {
	// Off turns per-call and out-of-band reports off.
	Off bool
	// Utilization is the application utilization the pod claims, on top of
	// Rate/Capacity.
	Utilization float64
	// Capacity, when set, adds the served rate over it (calls/s) to the
	// application utilization: a pod that can take Capacity calls/s.
	Capacity float64
	// Interval is how often CPU and rates are sampled.
	Interval time.Duration
	// EveryCall puts the per-call report on every call, as grpc-go's
	// orca.CallMetricsServerOption does. Without it each connection gets
	// each new sample once, on its first call after the sample: the
	// trailer of the calls in between would repeat what the client read
	// last, and it is most of what reporting costs per call.
	EveryCall bool
	// CallFraction of the calls, drawn at random, carry the per-call
	// report with EveryCall; 1 is every call. 0 means 1.
	CallFraction float64
}

// Register defines the flags on s.
func (c *Config) Register(s *config.Set) {
	s.Bool(&c.Off, "no-orca", "NO_ORCA", false,
		"do not report load with ORCA (no endpoint-load-metrics-bin trailer, no OpenRcaService)")
	s.Float(&c.Utilization, "orca-utilization", "ORCA_UTILIZATION", 0,
		"ORCA application utilization this pod claims (0..100, 1 = full); weighted_round_robin weighs pods by rate/utilization, CPU utilization when this is 0")
	s.Float(&c.Capacity, "orca-capacity", "ORCA_CAPACITY", 0,
		"calls/s this pod can take: adds the served rate over it to the claimed application utilization (0: off)")
	s.Duration(&c.Interval, "orca-interval", "ORCA_INTERVAL", time.Second,
		"how often the CPU utilization and call rates reported are measured")
	s.Bool(&c.EveryCall, "orca-every-call", "ORCA_EVERY_CALL", false,
		"put the per-call load report on every call, as grpc-go's orca.CallMetricsServerOption does; by default each connection gets each new sample once, on its first call after it")
	s.Float(&c.CallFraction, "orca-call-fraction", "ORCA_CALL_FRACTION", 1,
		"with --orca-every-call: fraction (0..1] of calls, drawn at random, that carry the report")
}

// Validate checks the ranges.
func (c *Config) Validate() error {
	return errors.Join(
		config.Check(c.Utilization >= 0 && c.Utilization <= maxUtilization, "orca-utilization", "%g is outside 0..%d", c.Utilization, maxUtilization),
		config.Check(c.Capacity >= 0 && c.Capacity <= maxCapacity, "orca-capacity", "%g is outside 0..%g calls/s", c.Capacity, float64(maxCapacity)),
		config.Check(c.Interval >= minInterval && c.Interval <= maxInterval, "orca-interval", "%v is outside %v..%v", c.Interval, minInterval, maxInterval),
		config.Check(c.CallFraction > 0 && c.CallFraction <= 1, "orca-call-fraction", "%g is outside (0, 1]", c.CallFraction),
		config.Check(c.CallFraction >= 1 || c.EveryCall, "orca-call-fraction", "%g draws from every call: give --orca-every-call too (by default each connection gets each new sample once)", c.CallFraction),
	)
}

// TrailerKey is the trailer of the per-call report, as grpc-go's
// orca.CallMetricsServerOption writes it and its balancers read it.
const TrailerKey = "endpoint-load-metrics-bin"

// Reporter measures the load and serves it. Close stops its sampling.
type Reporter struct {
	cfg      Config
	rec      orca.ServerMetricsRecorder
	cpu      cpuSource
	calls    atomic.Int64
	failures atomic.Int64
	// current is the per-call report of the last sample.
	current atomic.Pointer[sampleReport]
	// perCallInterceptor uses grpc-go's orca.CallMetricsServerOption, which
	// builds and encodes the report anew for every call (a benchmark
	// compares the two).
	perCallInterceptor bool

	stop chan struct{}
	wg   sync.WaitGroup
}

// New starts sampling every cfg.Interval; the first report (before a
// sample) carries the claim alone.
func New(cfg Config) *Reporter { return newReporter(cfg, rootFS()) }

func newReporter(cfg Config, root fs.FS) *Reporter {
	if cfg.CallFraction <= 0 {
		cfg.CallFraction = 1
	}
	r := &Reporter{cfg: cfg, rec: orca.NewServerMetricsRecorder(), cpu: newCPUSource(root), stop: make(chan struct{})}
	if cfg.Utilization > 0 {
		r.rec.SetApplicationUtilization(cfg.Utilization)
	}
	r.encode()
	r.wg.Go(r.sample)
	return r
}

// CPUSource names where the CPU utilization comes from, for the log.
func (r *Reporter) CPUSource() string { return r.cpu.String() }

// Close stops the sampling and waits for it.
func (r *Reporter) Close() {
	select {
	case <-r.stop:
	default:
		close(r.stop)
	}
	r.wg.Wait()
}

func (r *Reporter) sample() {
	t := time.NewTicker(r.cfg.Interval)
	defer t.Stop()
	last := time.Now()
	lastCPU, cpuErr := r.cpu.usage()
	var lastCalls, lastFailures int64
	for {
		select {
		case <-r.stop:
			return
		case now := <-t.C:
			dt := now.Sub(last).Seconds()
			if dt <= 0 {
				continue
			}
			if u, err := r.cpu.usage(); err == nil && cpuErr == nil {
				r.rec.SetCPUUtilization(max(0, (u-lastCPU).Seconds()/dt/r.cpu.cores()))
				lastCPU = u
			} else {
				// A counter that cannot be read reports no CPU rather
				// than a wrong one; the next good read starts afresh.
				r.rec.DeleteCPUUtilization()
				lastCPU, cpuErr = u, err
			}
			n, f := r.calls.Load(), r.failures.Load()
			qps := float64(n-lastCalls) / dt
			r.rec.SetQPS(qps)
			r.rec.SetEPS(float64(f-lastFailures) / dt)
			if app := r.application(qps); app > 0 {
				r.rec.SetApplicationUtilization(app)
			} else {
				// No claim and no calls: the CPU's utilization speaks.
				r.rec.DeleteApplicationUtilization()
			}
			last, lastCalls, lastFailures = now, n, f
			r.encode()
		}
	}
}

// encode makes the per-call trailer from the recorder's metrics: the
// report grpc-go's own interceptor would send for a handler that records
// nothing of its own.
func (r *Reporter) encode() {
	sm := r.rec.ServerMetrics()
	set := func(v float64) float64 { return max(v, 0) } // -1: unset
	b, err := proto.Marshal(&v3orcapb.OrcaLoadReport{
		CpuUtilization: set(sm.CPUUtilization), ApplicationUtilization: set(sm.AppUtilization),
		RpsFractional: set(sm.QPS), Eps: set(sm.EPS),
	})
	if err != nil {
		return // a report of four doubles always encodes; keep the last
	}
	r.current.Store(&sampleReport{trailer: metadata.MD{TrailerKey: []string{string(b)}}})
}

// sampleReport is one sample's per-call report, encoded once, and the
// connections that were given it. Replaced at each sample, so the set holds
// only the connections of one interval and a closed one is forgotten.
type sampleReport struct {
	trailer metadata.MD
	// sent holds the *peer.Peer of each connection given this report:
	// grpc-go makes one per connection and puts it in each call's context.
	sent sync.Map
}

// firstOn reports whether ctx's call is the first on its connection to be
// given this report, and marks it given. A call with no peer is given it.
func (s *sampleReport) firstOn(ctx context.Context) bool {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return true
	}
	if _, seen := s.sent.Load(p); seen {
		return false
	}
	_, seen := s.sent.LoadOrStore(p, struct{}{})
	return !seen
}

// application is the claimed utilization at the given rate.
func (r *Reporter) application(qps float64) float64 {
	u := r.cfg.Utilization
	if r.cfg.Capacity > 0 {
		u += qps / r.cfg.Capacity
	}
	return u
}

// ServerOptions add the per-call report to the backend's own calls and
// count them; none when reporting is off. Give them to the server before
// interceptors that may fail a call (fault injection), so that injected
// failures count.
//
// The report is the one grpc-go's orca.CallMetricsServerOption would
// write, encoded once per sample rather than per call: that interceptor
// builds a recorder, copies the server's metrics twice and encodes them
// for every call (BenchmarkCall, client and server together: 180
// allocations per call against 144 with no report; the cached trailer
// 158, most of them the client decoding it). The backend records nothing
// per call of its own, so the bytes are the same.
//
// Unless EveryCall, a connection is given each sample's report once, on its
// first call after the sample: the trailers of the calls in between would
// repeat it, and SetTrailer's map copy, the base64 and HPACK of the trailer
// are most of what a report costs per call (the README's Cost). Clients
// weigh by the last report they read, so they read the same.
func (r *Reporter) ServerOptions() []grpc.ServerOption {
	if r.cfg.Off {
		return nil
	}
	if r.perCallInterceptor {
		return []grpc.ServerOption{orca.CallMetricsServerOption(r.rec), grpc.ChainUnaryInterceptor(r.count)}
	}
	return []grpc.ServerOption{grpc.ChainUnaryInterceptor(r.count)}
}

// count counts the backend's calls and sets their trailer.
func (r *Reporter) count(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	if !strings.HasPrefix(info.FullMethod, MethodPrefix) {
		return h(ctx, req)
	}
	if r.perCallInterceptor {
		// grpc-go's interceptor writes a report only for a call whose
		// handler took the recorder.
		orca.CallMetricsRecorderFromContext(ctx)
	}
	resp, err := h(ctx, req)
	r.calls.Add(1)
	if err != nil {
		r.failures.Add(1)
	}
	if r.perCallInterceptor {
		return resp, err
	}
	rep := r.current.Load()
	give := r.cfg.EveryCall && r.drawn() || !r.cfg.EveryCall && rep.firstOn(ctx)
	if give {
		// The error is the stream's state (already done): nothing to do.
		_ = grpc.SetTrailer(ctx, rep.trailer)
	}
	return resp, err
}

// drawn draws a call to carry the report with EveryCall.
func (r *Reporter) drawn() bool {
	return r.cfg.CallFraction >= 1 || rand.Float64() < r.cfg.CallFraction
}

// Register serves the out-of-band reports (OpenRcaService) on s; its
// streams end when stopping does, since a stream never ends by itself and
// would hold a graceful stop for its whole timeout. grpc-go sends at most
// one report per 30 s on it (its minimum), the first at once.
func (r *Reporter) Register(s grpc.ServiceRegistrar, stopping context.Context) error {
	if r.cfg.Off {
		return nil
	}
	svc, err := orca.NewService(orca.ServiceOptions{ServerMetricsProvider: r.rec})
	if err != nil {
		return err
	}
	v3orcaservicegrpc.RegisterOpenRcaServiceServer(s, oobEnder{Service: svc, stopping: stopping})
	return nil
}

type oobEnder struct {
	*orca.Service
	stopping context.Context
}

func (o oobEnder) StreamCoreMetrics(req *v3orcaservicepb.OrcaLoadReportRequest, stream v3orcaservicegrpc.OpenRcaService_StreamCoreMetricsServer) error {
	ctx, cancel := context.WithCancel(stream.Context())
	defer cancel()
	defer context.AfterFunc(o.stopping, cancel)()
	err := o.Service.StreamCoreMetrics(req, oobStream{OpenRcaService_StreamCoreMetricsServer: stream, ctx: ctx})
	if o.stopping.Err() != nil {
		return status.Error(codes.Unavailable, "server shutting down")
	}
	return err
}

type oobStream struct {
	v3orcaservicegrpc.OpenRcaService_StreamCoreMetricsServer
	ctx context.Context
}

func (s oobStream) Context() context.Context { return s.ctx }
