// Package fanout calls every backend of a discovered target and aggregates
// their identities: EACH calls every endpoint once over its own connection;
// BALANCED sends count calls through one round-robin channel to show how
// calls spread over pods. See README.md.
package fanout

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/otel/trace"
	"golang.org/x/sync/semaphore"
	"google.golang.org/protobuf/types/known/timestamppb"

	knowingnodev1 "github.com/knowingnode/knowingnode/gen/knowingnode/v1"
	"github.com/knowingnode/knowingnode/internal/discovery"
)

// Limits of a request.
const (
	MaxCount     = 10000
	DefaultCount = 100
	MaxTimeout   = time.Minute
)

// Options tune a Service.
type Options struct {
	BackendTimeout time.Duration // per backend call (calls starting within timerSlack, 5 ms, share one deadline)
	DefaultTimeout time.Duration // of a whole fan-out, when the request sets none
	Concurrency    int           // calls in flight at once per fan-out
	// Admission control, process-wide; 0 means no limit. A fan-out over
	// either is refused at once with RESOURCE_EXHAUSTED, never queued.
	MaxFanOuts      int // fan-outs running at once
	MaxBackendCalls int // backend calls in flight over all fan-outs
	Logger          *slog.Logger
	Metrics         *Metrics     // nil: none
	Tracer          trace.Tracer // nil: no span per backend call

	// MaxWatchers bounds the WatchTargets streams open at once; 0 means no
	// limit. One more is refused with RESOURCE_EXHAUSTED.
	MaxWatchers int
	// NoStreaming turns WatchTargets and FanOutStream off: they answer
	// UNIMPLEMENTED, and clients (the page) fall back to polling.
	NoStreaming bool
	// WRR tunes BALANCED's weighted_round_robin (--wrr-blackout,
	// --wrr-update, --wrr-expiration).
	WRR WRR
	// Stopping, when set, ends every WatchTargets stream once it is done:
	// the server's stop phase, so a graceful stop need not wait for
	// streams that never end by themselves. Close ends them too.
	Stopping context.Context
}

// Service serves FanOutService over the configured targets.
type Service struct {
	knowingnodev1.UnimplementedFanOutServiceServer
	self    *knowingnodev1.Identity
	opts    Options
	log     *slog.Logger
	targets map[string]*entry
	names   []string // in configuration order; the first is the default
	def     string
	work    chan job                          // idle callers waiting for a backend call to make
	req     *knowingnodev1.GetIdentityRequest // of every backend call: empty, shared read-only

	fanOuts  *semaphore.Weighted // nil: no limit
	calls    *semaphore.Weighted // nil: no limit
	watchers *semaphore.Weighted // nil: no limit

	mu          sync.Mutex // guards closed and the Add of running
	closed      bool
	running     sync.WaitGroup     // fan-outs in progress
	stop        context.Context    // cancelled by Close: ends running fan-outs
	cancel      context.CancelFunc //
	quit        chan struct{}      // closed by Close: idle callers return
	callersDone sync.WaitGroup
}

// callers is how many goroutines wait to make backend calls. A call made on
// a fresh goroutine first grows its stack through gRPC's deep client path,
// which cost ~12% of the frontend's CPU under load; reused ones have grown.
// When all are busy a call gets a goroutine of its own, so they never limit
// concurrency.
const callers = 128

type entry struct {
	target  *discovery.Target
	pool    *Pool
	metrics *targetMetrics // nil: no metrics

	mu       sync.Mutex
	cached   *knowingnodev1.TargetState // rebuilt once per refresh, then shared
	cachedAt int64
}

// New returns a Service answering as self (which it shares read-only).
func New(self *knowingnodev1.Identity, o Options) *Service {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Service{self: self, opts: o, log: o.Logger, targets: map[string]*entry{},
		work: make(chan job), quit: make(chan struct{}), req: &knowingnodev1.GetIdentityRequest{}}
	s.stop, s.cancel = context.WithCancel(context.Background())
	if o.MaxFanOuts > 0 {
		s.fanOuts = semaphore.NewWeighted(int64(o.MaxFanOuts))
	}
	if o.MaxBackendCalls > 0 {
		s.calls = semaphore.NewWeighted(int64(o.MaxBackendCalls))
	}
	if o.MaxWatchers > 0 {
		s.watchers = semaphore.NewWeighted(int64(o.MaxWatchers))
	}
	for range callers {
		s.callersDone.Go(func() {
			for {
				select {
				case j := <-s.work:
					j.f()
					j.wg.Done()
				case <-s.quit:
					return
				}
			}
		})
	}
	return s
}

// Close refuses new fan-outs, ends those still running (by the time the
// servers have stopped, their callers are gone), and joins every goroutine
// the Service started. It returns an error if ctx ends first.
func (s *Service) Close(ctx context.Context) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	s.cancel()
	done := make(chan struct{})
	go func() {
		s.running.Wait() // no Add after closed is set, so no race with Wait
		close(s.quit)    // the work channel is never closed: goCall cannot panic
		s.callersDone.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("fan-out service: fan-outs still running at close: %w", ctx.Err())
	}
}

// enter registers a fan-out, unless the Service is closed.
func (s *Service) enter() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.running.Add(1)
	return true
}

// goCall runs f on an idle caller, or on a new goroutine when none is idle
// (or the callers have stopped).
func (s *Service) goCall(wg *sync.WaitGroup, f func()) {
	wg.Add(1)
	select {
	case s.work <- job{f, wg}: // no closure around f: one allocation less per call
	default:
		go func() {
			defer wg.Done()
			f()
		}()
	}
}

// job is a backend call for an idle caller: f, then wg.Done.
type job struct {
	f  func()
	wg *sync.WaitGroup
}

// Add registers a target and the pool that discovery keeps in step with it.
func (s *Service) Add(t *discovery.Target, p *Pool) error {
	name := t.Spec().Name
	if _, dup := s.targets[name]; dup {
		return fmt.Errorf("target %q configured twice", name)
	}
	s.targets[name] = &entry{target: t, pool: p, cachedAt: -1, metrics: s.opts.Metrics.target(name)}
	p.onVanish(func(addrs []string) { s.opts.Metrics.forget(name, addrs) })
	s.names = append(s.names, name)
	if s.def == "" {
		s.def = name
	}
	return nil
}

// SetDefault chooses the target used when a request names none.
func (s *Service) SetDefault(name string) error {
	if _, ok := s.targets[name]; !ok {
		return fmt.Errorf("default target %q is not configured (configured: %s)", name, strings.Join(s.names, ", "))
	}
	s.def = name
	return nil
}

// ListTargets lists the configured targets and what each resolves to.
func (s *Service) ListTargets(context.Context, *knowingnodev1.ListTargetsRequest) (*knowingnodev1.ListTargetsResponse, error) {
	resp := &knowingnodev1.ListTargetsResponse{DefaultTarget: s.def}
	for _, n := range s.names {
		ts, _ := s.compared(n, s.targets[n].target.State())
		resp.Targets = append(resp.Targets, ts)
	}
	return resp, nil
}

// state returns the target's discovery state as a message, rebuilt only
// after a refresh.
func (e *entry) state() *knowingnodev1.TargetState {
	return e.stateOf(e.target.State())
}

// stateOf returns st as a message; the cached one when st is the state it
// was built from.
func (e *entry) stateOf(st discovery.State) *knowingnodev1.TargetState {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.cached != nil && e.cachedAt == st.Refreshes {
		return e.cached
	}
	ts := &knowingnodev1.TargetState{
		Name:          st.Spec.Name,
		Spec:          st.Spec.Raw,
		Mode:          modeOf(st.Spec.QType),
		Query:         st.Spec.Query(),
		DnsServer:     st.Spec.Server,
		Refreshes:     st.Refreshes,
		RefreshErrors: st.RefreshErrors,
	}
	for _, ep := range st.Endpoints {
		ts.Endpoints = append(ts.Endpoints, endpointMessage(ep))
	}
	if !st.LastRefresh.IsZero() {
		ts.LastRefresh = timestamppb.New(st.LastRefresh)
	}
	if !st.LastSuccess.IsZero() {
		ts.LastSuccess = timestamppb.New(st.LastSuccess)
	}
	if st.LastError != nil {
		ts.LastError = st.LastError.Error()
	}
	e.cached, e.cachedAt = ts, st.Refreshes
	return ts
}

func modeOf(q discovery.QType) knowingnodev1.DiscoveryMode {
	switch q {
	case discovery.A:
		return knowingnodev1.DiscoveryMode_DISCOVERY_MODE_DNS
	case discovery.SRV:
		return knowingnodev1.DiscoveryMode_DISCOVERY_MODE_SRV
	case discovery.StatefulSet:
		return knowingnodev1.DiscoveryMode_DISCOVERY_MODE_STATEFULSET
	case discovery.Static:
		return knowingnodev1.DiscoveryMode_DISCOVERY_MODE_STATIC
	case discovery.Kubernetes:
		return knowingnodev1.DiscoveryMode_DISCOVERY_MODE_KUBERNETES
	}
	return knowingnodev1.DiscoveryMode_DISCOVERY_MODE_UNSPECIFIED
}
