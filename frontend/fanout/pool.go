package fanout

import (
	"log/slog"
	"maps"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	_ "google.golang.org/grpc/health" // client-side health checking (healthCheckConfig)

	knowingnodev1 "github.com/knowingnode/knowingnode/gen/knowingnode/v1"
	"github.com/knowingnode/knowingnode/internal/discovery"
)

// backend is one discovered endpoint and its long-lived connection.
type backend struct {
	ep      discovery.Endpoint
	cc      *grpc.ClientConn
	client  knowingnodev1.IdentityServiceClient
	codec   *identityCodec // cc's: keeps the last identity decoded, and its bytes
	renewed time.Time      // when Renew last replaced cc
	lb      *endpointLB    // cc's: what the BALANCED policies keep of it
}

// Pool holds one connection per discovered endpoint of a target, reconciled
// when discovery's set changes; EACH calls each of them, BALANCED picks among
// the same connections under its policy. Nothing is dialed per request.
type Pool struct {
	name       string
	dialOpts   []grpc.DialOption
	log        *slog.Logger
	closeGrace time.Duration

	mu      sync.Mutex // serialises Update and Close
	conns   map[string]*backend
	closing map[*grpc.ClientConn]*time.Timer // vanished, closed after the grace
	closed  bool
	vanish  func(addrs []string) // told after addresses left discovery

	current atomic.Pointer[snapshot] // replaced, never mutated

	lb *roundRobin

	// The BALANCED policies' state (policy.go): weighted_round_robin's
	// scheduler and its counter, and ring_hash's ring, each over one
	// snapshot of the endpoints.
	wrrMu   sync.Mutex // serialises building a scheduler
	wrr     atomic.Pointer[wrrScheduler]
	wrrNext atomic.Uint32
	ringMu  sync.Mutex // serialises building a ring
	ring    atomic.Pointer[hashRing]
}

type snapshot struct {
	backends []*backend // in discovery order
	addrs    map[string]*backend
}

// endpointServiceConfig is that of each endpoint's own connection: health
// checked (grpc.health.v1 Watch of the server's overall status), so that a
// draining pod's connection leaves READY the moment it turns NOT_SERVING:
// EACH's call fails at once with the health status rather than being made,
// and BALANCED stops picking it. A server without the health service counts
// as healthy. round_robin over the one address, because grpc-go's
// pick_first does no health checking at the top level.
const endpointServiceConfig = `{
  "loadBalancingConfig": [{"round_robin": {}}],
  "healthCheckConfig": {"serviceName": ""}
}`

// NewPool returns an empty pool for the named target. dialOpts apply to every
// connection (credentials, stats handlers, size limits). A connection whose
// endpoint vanished from discovery is closed closeGrace later, so that calls
// already on it finish rather than end CANCELED: give it at least the
// per-backend call timeout.
// The error is always nil (kept so callers need not change).
func NewPool(name string, closeGrace time.Duration, log *slog.Logger, dialOpts ...grpc.DialOption) (*Pool, error) {
	p := &Pool{
		name:       name,
		dialOpts:   dialOpts,
		log:        log.With("target", name),
		closeGrace: closeGrace,
		conns:      map[string]*backend{},
		closing:    map[*grpc.ClientConn]*time.Timer{},
	}
	p.current.Store(&snapshot{})
	p.lb = &roundRobin{p: p}
	p.wrrNext.Store(rand.Uint32()) // grpc-go starts its scheduler at a random point
	return p, nil
}

// Backends returns the current backends in discovery order; read-only.
func (p *Pool) Backends() []*backend { return p.current.Load().backends }

// Has reports whether addr is among the current endpoints.
func (p *Pool) Has(addr string) bool { return p.current.Load().addrs[addr] != nil }

// backend returns the current backend at addr, or nil.
func (p *Pool) backend(addr string) *backend { return p.current.Load().addrs[addr] }

// onVanish sets what Update tells about addresses that left discovery.
func (p *Pool) onVanish(f func(addrs []string)) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.vanish = f
}

// Balanced is a client whose calls round-robin over the current endpoints'
// connections, skipping those not READY (connecting, failed or draining).
func (p *Pool) Balanced() knowingnodev1.IdentityServiceClient { return p.lb }

// Update reconciles the pool with eps: new endpoints are dialed, vanished
// ones closed, kept ones reused.
func (p *Pool) Update(eps []discovery.Endpoint) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return // a refresh racing the teardown must not dial
	}
	next := make([]*backend, 0, len(eps))
	keep := make(map[string]*backend, len(eps))
	for _, ep := range eps {
		if _, dup := keep[ep.Addr]; dup {
			continue // two names for one address: one connection
		}
		b, ok := p.conns[ep.Addr]
		if !ok {
			var err error
			if b, err = p.dial(ep); err != nil {
				p.log.Error("dial failed; endpoint skipped", "addr", ep.Addr, "err", err)
				continue
			}
		} else if b.ep != ep {
			b = &backend{ep: ep, cc: b.cc, client: b.client, codec: b.codec, renewed: b.renewed, lb: b.lb} // same address, new name
		}
		keep[ep.Addr] = b
		next = append(next, b)
	}
	var gone []string
	for addr, b := range p.conns {
		if _, ok := keep[addr]; !ok {
			gone = append(gone, addr)
			// A fan-out may have this connection in hand right now.
			p.closeLater(b.cc)
		}
	}
	p.conns = keep
	p.current.Store(&snapshot{backends: next, addrs: maps.Clone(keep)})
	if len(gone) > 0 && p.vanish != nil {
		p.vanish(gone)
	}
}

// renewEvery bounds how often Renew redials one endpoint: a pod's own
// address stays draining for its whole drain delay.
const renewEvery = 250 * time.Millisecond

// Renew replaces the connection of the endpoint at addr, if it is still cc
// and was not renewed in the last renewEvery (unless chained: cc is the one
// the caller's previous Renew made), with a new one, and returns its client
// and connection; the old connection closes after the grace, so calls on it
// finish. It is how the pool lets go of a backend that announced its drain:
// behind a Service VIP the new connection reaches another pod.
func (p *Pool) Renew(addr string, cc *grpc.ClientConn, chained bool) (knowingnodev1.IdentityServiceClient, *grpc.ClientConn, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	b, ok := p.conns[addr]
	if p.closed || !ok || b.cc != cc || (!chained && time.Since(b.renewed) < renewEvery) {
		return nil, nil, false
	}
	nb, err := p.dial(b.ep)
	if err != nil {
		return nil, nil, false
	}
	nb.renewed = time.Now()
	p.conns[addr] = nb
	snap := p.current.Load()
	backends := slices.Clone(snap.backends)
	for i := range backends {
		if backends[i] == b {
			backends[i] = nb
		}
	}
	addrs := maps.Clone(snap.addrs)
	addrs[addr] = nb
	p.current.Store(&snapshot{backends: backends, addrs: addrs})
	p.closeLater(b.cc)
	return nb.client, nb.cc, true
}

// dial makes an endpoint's own connection. passthrough: the address is an
// IP we resolved ourselves; the channel must not resolve it again.
func (p *Pool) dial(ep discovery.Endpoint) (*backend, error) {
	opts := append([]grpc.DialOption{
		grpc.WithDefaultServiceConfig(endpointServiceConfig),
		// Stay connected: BALANCED picks only READY connections, and an idle
		// one would be passed over, piling calls onto the others.
		grpc.WithIdleTimeout(0),
	}, p.dialOpts...)
	// Last, so that it is this connection's codec whatever dialOpts say.
	codec := newIdentityCodec()
	opts = append(opts, grpc.WithDefaultCallOptions(grpc.ForceCodecV2(codec)))
	cc, err := grpc.NewClient("passthrough:///"+ep.Addr, opts...)
	if err != nil {
		return nil, err
	}
	cc.Connect() // warm up now rather than on the first fan-out
	return &backend{ep: ep, cc: cc, client: knowingnodev1.NewIdentityServiceClient(cc), codec: codec, lb: &endpointLB{}}, nil
}

// closeLater closes cc after the grace; p.mu is held.
func (p *Pool) closeLater(cc *grpc.ClientConn) {
	p.closing[cc] = time.AfterFunc(p.closeGrace, func() {
		p.mu.Lock()
		delete(p.closing, cc)
		p.mu.Unlock()
		cc.Close()
	})
}

// Close closes every connection, those of vanished endpoints still in their
// grace too; Update does nothing after.
func (p *Pool) Close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return
	}
	p.closed = true
	for _, b := range p.conns {
		b.cc.Close()
	}
	for cc, t := range p.closing {
		t.Stop()
		cc.Close()
	}
	p.conns, p.closing = map[string]*backend{}, nil
	p.current.Store(&snapshot{})
}
