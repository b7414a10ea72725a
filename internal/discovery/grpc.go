package discovery

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"google.golang.org/grpc/attributes"
	"google.golang.org/grpc/resolver"
	"k8s.io/client-go/kubernetes"
)

// Options configure the gRPC resolvers of Builders and Register.
type Options struct {
	// Refresh is how often a target is re-resolved; default 5 s. A
	// kubernetes:/// target also follows its watch at once, and any target
	// is re-resolved early when gRPC asks (ResolveNow, after a lost
	// connection), at most every Refresh/4 (1 s at most).
	Refresh time.Duration
	// Timeout bounds one refresh; default min(Refresh, 5 s).
	Timeout time.Duration
	Logger  *slog.Logger // default: discard

	// Kube is the API client of kubernetes:/// targets. Nil: one is made
	// from Kubeconfig (empty: the pod's in-cluster config) at the first
	// such target, and shared by the rest.
	Kube       kubernetes.Interface
	Kubeconfig string

	// Lookuper returns the DNS client asking server (host:port; empty for
	// the system's resolver); default NetLookuper.
	Lookuper func(server string) Lookuper

	// OnChange, when set, sees each change of a target's state (see
	// State.Version), from its first answer or error on: every endpoint
	// with its conditions, callable or not, and the error. target is the
	// target as dialed (State.Spec.Raw). It is called once per change
	// whatever the number of clients dialing the target, one call at a
	// time per target, from the target's own goroutine: a slow OnChange
	// delays no refresh, and skips to the latest state. The Close of the
	// target's last client waits for a call under way.
	OnChange func(target string, st State)
}

// DefaultRefresh is Options.Refresh's default, the frontend's
// --refresh-interval default.
const DefaultRefresh = 5 * time.Second

// Schemes are the target schemes Builders serves.
var Schemes = []QType{A, SRV, StatefulSet, Kubernetes, Static}

// Builders returns a gRPC resolver.Builder for each scheme of Schemes, for
// grpc.WithResolvers: the target is a spec as ParseSpec reads it, e.g.
// "srv:///_grpc._tcp.backend.default.svc.cluster.local". Nothing is
// registered globally: the builders serve only the clients given them, and
// this package's "dns" (refreshed every Options.Refresh) replaces gRPC's
// own (refreshed only after a lost connection) only there. The builders
// share Options, the API client of kubernetes:/// targets, and one
// discovery loop per target: the clients dialing the same target (bin/load
// opens --connections of them) share its refreshes, its watch and its
// OnChange calls. The loop starts with the first client's resolver and
// stops, joined, when the last one closes.
func Builders(o Options) []resolver.Builder {
	if o.Refresh <= 0 {
		o.Refresh = DefaultRefresh
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Lookuper == nil {
		o.Lookuper = NetLookuper
	}
	sh := &shared{o: o, kube: o.Kube, loops: map[string]*loop{}}
	bs := make([]resolver.Builder, len(Schemes))
	for i, s := range Schemes {
		bs[i] = &builder{scheme: s, shared: sh}
	}
	return bs
}

// Register registers, in gRPC's global registry, the builders of every
// scheme but dns, so that a plain grpc.NewClient("srv:///…") uses them.
// gRPC's registry is not safe to change while clients dial: call Register
// once, early in main, never from a library or an init function. dns stays
// gRPC's own, so that the program's other clients keep the resolver they
// expect; pass Builders to grpc.WithResolvers for this package's dns.
func Register(o Options) {
	for _, b := range Builders(o) {
		if b.Scheme() != string(A) {
			resolver.Register(b)
		}
	}
}

// shared is what the builders of one Builders call share.
type shared struct {
	o     Options
	mu    sync.Mutex
	kube  kubernetes.Interface
	loops map[string]*loop // by target, while a resolver uses it
}

// clientLocked returns the API client, made at the first kubernetes:///
// target; s.mu is held.
func (s *shared) clientLocked() (kubernetes.Interface, error) {
	if s.kube == nil {
		c, err := KubeClient(s.o.Kubeconfig)
		if err != nil {
			return nil, err
		}
		s.kube = c
	}
	return s.kube, nil
}

// acquire returns the running loop of spec's target, starting it for the
// first resolver; release gives it back.
func (s *shared) acquire(spec Spec) (*loop, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if l, ok := s.loops[spec.Raw]; ok {
		l.refs++
		return l, nil
	}
	l, err := s.start(spec)
	if err != nil {
		return nil, err
	}
	s.loops[spec.Raw] = l
	return l, nil
}

// release stops l after its last resolver, outside the lock: a client
// dialing the target meanwhile starts a loop of its own.
func (s *shared) release(l *loop) {
	s.mu.Lock()
	l.refs--
	last := l.refs == 0
	if last {
		delete(s.loops, l.target.Spec().Raw)
	}
	s.mu.Unlock()
	if last {
		l.stop()
	}
}

// loop is one target's discovery: its refreshes (or watch), and OnChange.
type loop struct {
	target  *Target
	watcher *KubernetesWatcher // nil but for kubernetes:///
	refs    int                // resolvers using it; guarded by shared.mu
	cancel  context.CancelFunc
	wg      sync.WaitGroup
}

// start starts spec's loop; s.mu is held. The first answer reaches the
// resolvers as soon as it comes: nothing waits for it.
func (s *shared) start(spec Spec) (*loop, error) {
	l := &loop{refs: 1}
	var src Source
	if spec.QType == Kubernetes {
		client, err := s.clientLocked()
		if err != nil {
			return nil, fmt.Errorf("discovery resolver %q: %w", spec.Raw, err)
		}
		w, err := NewKubernetesWatcher(client, spec, s.o.Logger)
		if err != nil {
			return nil, fmt.Errorf("discovery resolver: %w", err)
		}
		src, l.watcher = w, w
	} else {
		src = NewResolver(s.o.Lookuper(spec.Server))
	}
	l.target = NewTarget(spec, src, TargetOptions{Interval: s.o.Refresh, Timeout: s.o.Timeout, Logger: s.o.Logger.With("grpc_target", spec.Raw)})
	var ctx context.Context
	ctx, l.cancel = context.WithCancel(context.Background())
	l.wg.Go(func() {
		l.target.Refresh(ctx)
		l.target.Run(ctx)
	})
	if on := s.o.OnChange; on != nil {
		l.wg.Go(func() {
			eachChange(ctx, l.target, func(st State) { on(st.Spec.Raw, st) })
		})
	}
	return l, nil
}

// stop ends the refreshes, the watch and OnChange, and waits for them.
func (l *loop) stop() {
	l.cancel()
	l.wg.Wait()
	if l.watcher != nil {
		l.watcher.Close()
	}
}

// eachChange calls f with t's state after each change (State.Version), from
// the first answer or error on, until ctx ends. A change that comes while
// f runs is seen at once after it; several are seen as the latest.
func eachChange(ctx context.Context, t *Target, f func(State)) {
	var seen uint64 // Version 0: nothing resolved yet
	for {
		st, changed := t.Watch()
		if st.Version != seen {
			seen = st.Version
			f(st)
		}
		select {
		case <-ctx.Done():
			return
		case <-changed:
		}
	}
}

type builder struct {
	scheme QType
	*shared
}

func (b *builder) Scheme() string { return string(b.scheme) }

// Build parses the target as a spec and follows its loop, started by the
// first client dialing the target: the first answer reaches gRPC as soon as
// it comes, Build does not wait for it.
func (b *builder) Build(target resolver.Target, cc resolver.ClientConn, _ resolver.BuildOptions) (resolver.Resolver, error) {
	raw := target.String()
	if target.URL.RawQuery != "" {
		raw += "?" + target.URL.RawQuery
	}
	spec, err := ParseSpec(raw)
	if err != nil {
		return nil, fmt.Errorf("discovery resolver: %w", err)
	}
	if spec.QType != b.scheme {
		return nil, fmt.Errorf("discovery resolver: %q is a %s spec, this builder serves %s", raw, spec.QType, b.scheme)
	}
	spec.Name = string(b.scheme)
	l, err := b.acquire(spec)
	if err != nil {
		return nil, err
	}
	r := &grpcResolver{cc: cc, loop: l, shared: b.shared}
	var ctx context.Context
	ctx, r.cancel = context.WithCancel(context.Background())
	r.wg.Go(func() { eachChange(ctx, l.target, r.update) })
	return r, nil
}

// grpcResolver hands its loop's endpoints to one gRPC client.
type grpcResolver struct {
	cc     resolver.ClientConn
	loop   *loop
	shared *shared
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// update hands a change of the target's state to gRPC: the callable
// endpoints after every answer (none after an empty one, so calls fail
// rather than reach pods that are gone), the error while no answer ever
// came. A failure after an answer keeps its set: gRPC is told nothing.
func (r *grpcResolver) update(st State) {
	switch {
	case st.LastError != nil && st.LastSuccess.IsZero():
		r.cc.ReportError(fmt.Errorf("%s: %w", st.Spec.Query(), st.LastError))
	case st.LastError == nil:
		// The error is the balancer's to act on (an empty set fails
		// calls); the next refresh comes anyway.
		_ = r.cc.UpdateState(ResolverState(st.Endpoints))
	}
}

// ResolveNow asks for an early refresh (gRPC calls it after a connection
// is lost); the loop's minimum gap between early refreshes holds for all
// its clients together.
func (r *grpcResolver) ResolveNow(resolver.ResolveNowOptions) { r.loop.target.RefreshSoon() }

// Close stops following the loop, and the loop itself when no other client
// follows it, and waits for them.
func (r *grpcResolver) Close() {
	r.cancel()
	r.wg.Wait()
	r.shared.release(r.loop)
}

type endpointKey struct{}

// ResolverState is the resolver state of eps: one address per callable
// endpoint, carrying the Endpoint (EndpointOf) for balancers that look at
// zones, nodes or conditions.
func ResolverState(eps []Endpoint) resolver.State {
	var st resolver.State
	for _, e := range eps {
		if e.Callable() {
			st.Addresses = append(st.Addresses, resolver.Address{
				Addr:               e.Addr,
				BalancerAttributes: attributes.New(endpointKey{}, e),
			})
		}
	}
	return st
}

// EndpointOf returns the Endpoint a resolver of this package found at a,
// for a balancer that prefers a zone or avoids a terminating pod.
func EndpointOf(a resolver.Address) (Endpoint, bool) {
	e, ok := a.BalancerAttributes.Value(endpointKey{}).(Endpoint)
	return e, ok
}
