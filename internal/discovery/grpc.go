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
// share Options, and the API client of kubernetes:/// targets.
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
	sh := &shared{o: o, kube: o.Kube}
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
	o    Options
	mu   sync.Mutex
	kube kubernetes.Interface
}

func (s *shared) client() (kubernetes.Interface, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.kube == nil {
		c, err := KubeClient(s.o.Kubeconfig)
		if err != nil {
			return nil, err
		}
		s.kube = c
	}
	return s.kube, nil
}

type builder struct {
	scheme QType
	*shared
}

func (b *builder) Scheme() string { return string(b.scheme) }

// Build parses the target as a spec and starts resolving it: the first
// answer reaches gRPC as soon as it comes, Build does not wait for it.
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
	var src Source
	r := &grpcResolver{cc: cc}
	if spec.QType == Kubernetes {
		client, err := b.client()
		if err != nil {
			return nil, fmt.Errorf("discovery resolver %q: %w", raw, err)
		}
		w, err := NewKubernetesWatcher(client, spec, b.o.Logger)
		if err != nil {
			return nil, fmt.Errorf("discovery resolver: %w", err)
		}
		src, r.watcher = w, w
	} else {
		src = NewResolver(b.o.Lookuper(spec.Server))
	}
	r.target = NewTarget(spec, src, TargetOptions{Interval: b.o.Refresh, Timeout: b.o.Timeout, Logger: b.o.Logger.With("grpc_target", raw)})
	var ctx context.Context
	ctx, r.cancel = context.WithCancel(context.Background())
	r.wg.Go(func() {
		r.target.Refresh(ctx)
		r.target.Run(ctx)
	})
	r.wg.Go(func() { r.follow(ctx) })
	return r, nil
}

// grpcResolver hands a Target's endpoints to one gRPC client.
type grpcResolver struct {
	cc      resolver.ClientConn
	target  *Target
	watcher *KubernetesWatcher // nil but for kubernetes:///
	cancel  context.CancelFunc
	wg      sync.WaitGroup
}

// follow hands each change of the target's state to gRPC: the callable
// endpoints after every answer (none after an empty one, so calls fail
// rather than reach pods that are gone), the error while no answer ever
// came. A failure after an answer keeps its set: gRPC is told nothing.
func (r *grpcResolver) follow(ctx context.Context) {
	var sent uint64 // Version 0: nothing resolved yet
	for {
		st, changed := r.target.Watch()
		if st.Version != sent {
			sent = st.Version
			switch {
			case st.LastError != nil && st.LastSuccess.IsZero():
				r.cc.ReportError(fmt.Errorf("%s: %w", st.Spec.Query(), st.LastError))
			case st.LastError == nil:
				// The error is the balancer's to act on (an empty set
				// fails calls); the next refresh comes anyway.
				_ = r.cc.UpdateState(ResolverState(st.Endpoints))
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-changed:
		}
	}
}

// ResolveNow asks for an early refresh (gRPC calls it after a connection
// is lost).
func (r *grpcResolver) ResolveNow(resolver.ResolveNowOptions) { r.target.RefreshSoon() }

// Close stops the refreshes and the watch, and waits for them.
func (r *grpcResolver) Close() {
	r.cancel()
	r.wg.Wait()
	if r.watcher != nil {
		r.watcher.Close()
	}
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
