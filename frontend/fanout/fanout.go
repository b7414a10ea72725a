// Package fanout calls every backend of a discovered target and aggregates
// their identities: EACH calls every endpoint once over its own connection;
// BALANCED sends count calls through one round-robin channel to show how
// calls spread over pods.
package fanout

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/semaphore"

	"go.opentelemetry.io/otel/attribute"
	otelcodes "go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	knowingnodev1 "github.com/knowingnode/knowingnode/gen/knowingnode/v1"
	"github.com/knowingnode/knowingnode/internal/discovery"
	"github.com/knowingnode/knowingnode/internal/grpccode"
)

// Limits of a request.
const (
	MaxCount     = 10000
	DefaultCount = 100
	MaxTimeout   = time.Minute
)

// Options tune a Service.
type Options struct {
	BackendTimeout time.Duration // per backend call
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
	work    chan func() // idle callers waiting for a backend call to make

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
	target *discovery.Target
	pool   *Pool

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
		work: make(chan func()), quit: make(chan struct{})}
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
				case f := <-s.work:
					f()
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
	g := func() {
		defer wg.Done()
		f()
	}
	select {
	case s.work <- g:
	default:
		go g()
	}
}

// Add registers a target and the pool that discovery keeps in step with it.
func (s *Service) Add(t *discovery.Target, p *Pool) error {
	name := t.Spec().Name
	if _, dup := s.targets[name]; dup {
		return fmt.Errorf("target %q configured twice", name)
	}
	s.targets[name] = &entry{target: t, pool: p, cachedAt: -1}
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

// FanOut calls the backends of one target.
func (s *Service) FanOut(ctx context.Context, req *knowingnodev1.FanOutRequest) (*knowingnodev1.FanOutResponse, error) {
	return s.fanOutEach(ctx, req, nil)
}

// fanOutEach is FanOut, calling onResult (when not nil) with each EACH
// result as it arrives, from the goroutine that made the call: FanOutStream
// streams them.
func (s *Service) fanOutEach(ctx context.Context, req *knowingnodev1.FanOutRequest, onResult func(*knowingnodev1.BackendResult)) (*knowingnodev1.FanOutResponse, error) {
	name := req.GetTarget()
	if name == "" {
		name = s.def
	}
	e, ok := s.targets[name]
	if !ok {
		// The label is fixed: names from requests must not mint series.
		s.opts.Metrics.rejected("unknown", modeLabel(req.GetMode()), "error")
		return nil, status.Errorf(codes.NotFound, "unknown target %q; configured targets: %s", name, strings.Join(s.names, ", "))
	}
	if !s.enter() {
		s.opts.Metrics.refused(name, modeLabel(req.GetMode()), limitShuttingDown)
		return nil, status.Error(codes.Unavailable, "frontend shutting down: no new fan-outs")
	}
	defer s.running.Done()
	resp, err := s.fanOut(ctx, name, e, req, onResult)
	if err != nil && status.Code(err) != codes.ResourceExhausted {
		s.opts.Metrics.rejected(name, modeLabel(req.GetMode()), "error")
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

func (s *Service) fanOut(ctx context.Context, name string, e *entry, req *knowingnodev1.FanOutRequest, onResult func(*knowingnodev1.BackendResult)) (*knowingnodev1.FanOutResponse, error) {
	mode := req.GetMode()
	switch mode {
	case knowingnodev1.FanOutMode_FAN_OUT_MODE_UNSPECIFIED:
		mode = knowingnodev1.FanOutMode_FAN_OUT_MODE_EACH
	case knowingnodev1.FanOutMode_FAN_OUT_MODE_EACH, knowingnodev1.FanOutMode_FAN_OUT_MODE_BALANCED:
	default:
		return nil, status.Errorf(codes.InvalidArgument, "mode %d is not a fan-out mode: want EACH or BALANCED", mode)
	}
	count := int(req.GetCount())
	if mode == knowingnodev1.FanOutMode_FAN_OUT_MODE_BALANCED && count == 0 {
		count = DefaultCount
	}
	if count < 0 || count > MaxCount {
		return nil, status.Errorf(codes.InvalidArgument, "count %d is out of range: want 0..%d (0: %d in BALANCED mode)", count, MaxCount, DefaultCount)
	}
	timeout := s.opts.DefaultTimeout
	if req.GetTimeout() != nil {
		if err := req.GetTimeout().CheckValid(); err != nil {
			return nil, status.Errorf(codes.InvalidArgument, "timeout: %v", err)
		}
		timeout = req.GetTimeout().AsDuration()
		if timeout <= 0 || timeout > MaxTimeout {
			return nil, status.Errorf(codes.InvalidArgument, "timeout %v is out of range: want more than 0s and at most %v", timeout, MaxTimeout)
		}
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
		lats    []time.Duration
	)
	if mode == knowingnodev1.FanOutMode_FAN_OUT_MODE_EACH {
		results = s.each(ctx, e.pool, backends, width, onResult)
		lats = make([]time.Duration, 0, len(results))
		for _, r := range results {
			if r.Code != CodeDraining {
				lats = append(lats, r.Latency.AsDuration())
			}
		}
	} else {
		results, lats = s.balanced(ctx, e.pool, backends, count, width)
	}
	sum := summarize(results, lats, time.Since(start))
	s.opts.Metrics.observe(name, modeLabel(mode), e.pool.Has, len(backends), results, sum)
	if sum.ByCode[grpccode.Name(codes.Unavailable)] > 0 || sum.ByCode[grpccode.Name(codes.DeadlineExceeded)] > 0 {
		e.target.RefreshSoon() // a backend may be gone: look again now
	}
	s.log.InfoContext(ctx, "fan-out", "target", name, "mode", shortMode(mode), "backends", len(backends),
		"calls", sum.Total, "ok", sum.Ok, "failed", sum.Failed, "draining", sum.Draining, "duration", sum.Duration.AsDuration())
	return &knowingnodev1.FanOutResponse{
		Frontend:  s.self,
		Target:    name,
		Mode:      mode,
		Results:   results,
		Summary:   sum,
		Discovery: disc,
	}, nil
}

// CodeDraining is the code of a result whose backend announced, through
// gRPC health checking, that it is shutting down (NOT_SERVING): the channel
// did not call it, and that is no failure.
const CodeDraining = "DRAINING"

// isDraining tells a call refused because the backend's health is
// NOT_SERVING, as grpc-go's client-side health checking words it
// (google.golang.org/grpc/health/client.go), from any other UNAVAILABLE.
func isDraining(st *status.Status) bool {
	return st.Code() == codes.Unavailable && strings.Contains(st.Message(), "health check failed. status=NOT_SERVING")
}

// each calls every backend once, at most width at a time. A backend found
// draining gets one more try on a new connection (Pool.Renew): behind a
// Service VIP the new connection reaches another, ready pod, as a client
// letting go of a draining pod would; a pod's own address stays draining.
func (s *Service) each(ctx context.Context, pool *Pool, backends []*backend, width int, onResult func(*knowingnodev1.BackendResult)) []*knowingnodev1.BackendResult {
	results := make([]*knowingnodev1.BackendResult, len(backends))
	sem := make(chan struct{}, width)
	var wg sync.WaitGroup
	for i, b := range backends {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			// The overall deadline passed before this backend's turn.
			results[i] = failed(b.ep, status.FromContextError(ctx.Err()), 0)
			if onResult != nil {
				onResult(results[i])
			}
			continue
		}
		s.goCall(&wg, func() {
			defer func() { <-sem }()
			results[i] = s.call(ctx, b.client, b.ep)
			// Behind a VIP a new connection may reach another draining pod
			// in a rollout: a few tries, each a new connection.
			cc := b.cc
			for try := 0; try < 3 && results[i].Code == CodeDraining; try++ {
				c, renewed, ok := pool.Renew(b.ep.Addr, cc, try > 0)
				if !ok {
					break
				}
				cc = renewed
				results[i] = s.call(ctx, c, b.ep)
			}
			if onResult != nil {
				onResult(results[i])
			}
		})
	}
	wg.Wait()
	return results
}

func (s *Service) call(ctx context.Context, c knowingnodev1.IdentityServiceClient, ep discovery.Endpoint) *knowingnodev1.BackendResult {
	ctx, cancel := context.WithTimeout(ctx, s.opts.BackendTimeout)
	defer cancel()
	var span trace.Span
	if s.opts.Tracer != nil {
		ctx, span = s.opts.Tracer.Start(ctx, "fanout.backend", trace.WithAttributes(
			attribute.String("knowingnode.backend.address", ep.Addr),
			attribute.String("knowingnode.backend.dns_name", ep.DNSName)))
		defer span.End()
	}
	start := time.Now()
	resp, err := c.GetIdentity(ctx, &knowingnodev1.GetIdentityRequest{})
	lat := time.Since(start)
	if err != nil {
		st := status.Convert(err)
		if isDraining(st) {
			if span != nil {
				span.SetAttributes(attribute.Bool("knowingnode.backend.draining", true))
			}
			return draining(ep, lat)
		}
		if span != nil {
			span.SetStatus(otelcodes.Error, grpccode.Name(st.Code())+": "+st.Message())
		}
		return failed(ep, st, lat)
	}
	if span != nil {
		span.SetAttributes(
			attribute.String("knowingnode.backend.pod", resp.GetIdentity().GetPodName()),
			attribute.String("knowingnode.backend.node", resp.GetIdentity().GetNodeName()))
	}
	return &knowingnodev1.BackendResult{
		Address:  ep.Addr,
		DnsName:  ep.DNSName,
		Identity: resp.GetIdentity(),
		Code:     grpccode.Name(codes.OK),
		Calls:    1,
		Latency:  durationpb.New(lat),
	}
}

const drainingMessage = "backend is draining (its health is NOT_SERVING): not called"

func draining(ep discovery.Endpoint, lat time.Duration) *knowingnodev1.BackendResult {
	return &knowingnodev1.BackendResult{
		Address: ep.Addr,
		DnsName: ep.DNSName,
		Code:    CodeDraining,
		Message: drainingMessage,
		Latency: durationpb.New(lat),
		Calls:   1,
	}
}

func failed(ep discovery.Endpoint, st *status.Status, lat time.Duration) *knowingnodev1.BackendResult {
	return &knowingnodev1.BackendResult{
		Address: ep.Addr,
		DnsName: ep.DNSName,
		Code:    grpccode.Name(st.Code()),
		Message: st.Message(),
		Latency: durationpb.New(lat),
		Calls:   1,
	}
}

// balanced sends count calls through the round-robin channel, at most width
// at a time, and reports, per backend address reached, one result whose
// Calls says how many landed there (failures are grouped by code), and the
// latency of every call made.
func (s *Service) balanced(ctx context.Context, p *Pool, backends []*backend, count, width int) ([]*knowingnodev1.BackendResult, []time.Duration) {
	names := make(map[string]string, len(backends))
	for _, b := range backends {
		names[b.ep.Addr] = b.ep.DNSName
	}
	type key struct{ addr, code string }
	var (
		mu     sync.Mutex
		groups = map[key]*knowingnodev1.BackendResult{}
		order  []key
		lats   = make([]time.Duration, 0, count)
		wg     sync.WaitGroup
	)
	sem := make(chan struct{}, width)
	lb := p.Balanced()
	for range count {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		s.goCall(&wg, func() {
			defer func() { <-sem }()
			cctx, cancel := context.WithTimeout(ctx, s.opts.BackendTimeout)
			defer cancel()
			var pr peer.Peer
			start := time.Now()
			resp, err := lb.GetIdentity(cctx, &knowingnodev1.GetIdentityRequest{}, grpc.Peer(&pr))
			lat := time.Since(start)
			addr := ""
			if pr.Addr != nil {
				addr = pr.Addr.String()
			}
			st := status.Convert(err)
			code, msg := grpccode.Name(st.Code()), st.Message()
			if isDraining(st) {
				// Every pod is draining: round robin had none to pick.
				code, msg = CodeDraining, drainingMessage
			}
			k := key{addr, code}
			mu.Lock()
			defer mu.Unlock()
			if code != CodeDraining {
				lats = append(lats, lat)
			}
			g, ok := groups[k]
			if !ok {
				g = &knowingnodev1.BackendResult{Address: addr, DnsName: names[addr], Code: k.code, Message: msg, Latency: durationpb.New(lat)}
				if err == nil {
					g.Identity = resp.GetIdentity()
				}
				groups[k] = g
				order = append(order, k)
			}
			g.Calls++
		})
	}
	wg.Wait()
	if n := sumCalls(groups); n < count {
		// The deadline stopped the loop: account for the calls never sent.
		k := key{"", grpccode.Name(codes.DeadlineExceeded)}
		g, ok := groups[k]
		if !ok {
			g = &knowingnodev1.BackendResult{Code: k.code, Message: "fan-out deadline passed before the call was sent", Latency: durationpb.New(0)}
			groups[k] = g
			order = append(order, k)
		}
		g.Calls += int32(count - n)
	}
	out := make([]*knowingnodev1.BackendResult, 0, len(order))
	for _, k := range order {
		out = append(out, groups[k])
	}
	slices.SortStableFunc(out, func(a, b *knowingnodev1.BackendResult) int { return strings.Compare(a.Address, b.Address) })
	return out, lats
}

func sumCalls[K comparable](m map[K]*knowingnodev1.BackendResult) int {
	n := 0
	for _, g := range m {
		n += int(g.Calls)
	}
	return n
}

// summarize counts results by outcome, node, pod and zone, and takes latency
// quantiles (nearest rank) over lats, the latency of every call made. The
// quantiles are exact: a fan-out makes at most MaxCount calls, so sorting
// them all costs less than a histogram's fixed buckets would lose.
func summarize(results []*knowingnodev1.BackendResult, lats []time.Duration, took time.Duration) *knowingnodev1.FanOutSummary {
	sum := &knowingnodev1.FanOutSummary{
		ByNode:   map[string]int32{},
		ByPod:    map[string]int32{},
		ByCode:   map[string]int32{},
		ByZone:   map[string]int32{},
		Duration: durationpb.New(took),
	}
	for _, r := range results {
		n := max(r.Calls, 1)
		sum.Total += n
		sum.ByCode[r.Code] += n
		switch {
		case r.Identity != nil:
			sum.Ok += n
			sum.ByNode[r.Identity.NodeName] += n
			sum.ByPod[r.Identity.PodName] += n
			if z := r.Identity.Zone; z != "" {
				sum.ByZone[z] += n
			}
		case r.Code == CodeDraining:
			sum.Draining += n
		default:
			sum.Failed += n
		}
	}
	if len(lats) > 0 {
		lats = slices.Clone(lats)
		slices.Sort(lats)
		q := func(p int) *durationpb.Duration {
			i := (p*len(lats)+99)/100 - 1
			return durationpb.New(lats[max(i, 0)])
		}
		sum.LatencyMin = durationpb.New(lats[0])
		sum.LatencyP50 = q(50)
		sum.LatencyP99 = q(99)
		sum.LatencyMax = durationpb.New(lats[len(lats)-1])
	}
	return sum
}

func shortMode(m knowingnodev1.FanOutMode) string {
	return strings.TrimPrefix(m.String(), "FAN_OUT_MODE_")
}

// modeLabel is the mode as a metric label: an unknown number from a request
// is "unknown", so requests cannot mint series.
func modeLabel(m knowingnodev1.FanOutMode) string {
	if _, ok := knowingnodev1.FanOutMode_name[int32(m)]; !ok {
		return "unknown"
	}
	return shortMode(m)
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
