package fanout

import (
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/resolver/manual"

	"github.com/knowingnode/knowingnode/frontend/discovery"
	knowingnodev1 "github.com/knowingnode/knowingnode/gen/knowingnode/v1"
)

// backend is one discovered endpoint and its long-lived connection.
type backend struct {
	ep     discovery.Endpoint
	cc     *grpc.ClientConn
	client knowingnodev1.IdentityServiceClient
}

// Pool holds one connection per discovered endpoint of a target, reconciled
// when discovery's set changes, and one load-balanced channel over the same
// set. Nothing is dialed per request.
type Pool struct {
	name       string
	dialOpts   []grpc.DialOption
	log        *slog.Logger
	closeGrace time.Duration

	mu    sync.Mutex // serialises Update and Close
	conns map[string]*backend

	current atomic.Pointer[[]*backend] // in discovery order; replaced, never mutated

	manual   *manual.Resolver
	balanced *grpc.ClientConn
	lb       knowingnodev1.IdentityServiceClient
}

// balancedServiceConfig spreads calls round robin and retries a call that
// met UNAVAILABLE (a pod going away mid-rollout, a connection closed by
// MaxConnectionAge) on another pick: GetIdentity is idempotent, and BALANCED
// is about where calls land, not about losing them to a reconnect.
const balancedServiceConfig = `{
  "loadBalancingConfig": [{"round_robin": {}}],
  "methodConfig": [{
    "name": [{"service": "knowingnode.v1.IdentityService"}],
    "retryPolicy": {
      "maxAttempts": 3,
      "initialBackoff": "0.02s",
      "maxBackoff": "0.2s",
      "backoffMultiplier": 2,
      "retryableStatusCodes": ["UNAVAILABLE"]
    }
  }]
}`

// balancedScheme is private to each pool's channel (registered per channel
// with WithResolvers, not globally).
const balancedScheme = "knowingnode-discovered"

// NewPool returns an empty pool for the named target. dialOpts apply to every
// connection (credentials, stats handlers, size limits). A connection whose
// endpoint vanished from discovery is closed closeGrace later, so that calls
// already on it finish rather than end CANCELED: give it at least the
// per-backend call timeout.
func NewPool(name string, closeGrace time.Duration, log *slog.Logger, dialOpts ...grpc.DialOption) (*Pool, error) {
	p := &Pool{
		name:       name,
		dialOpts:   dialOpts,
		log:        log.With("target", name),
		closeGrace: closeGrace,
		conns:      map[string]*backend{},
		manual:     manual.NewBuilderWithScheme(balancedScheme),
	}
	p.current.Store(&[]*backend{})
	// Discovery feeds the balanced channel through a manual resolver, so it
	// sees exactly the endpoints the EACH fan-out sees, refreshed as often;
	// grpc-go's dns resolver would neither read SRV nor refresh in time.
	p.manual.InitialState(resolver.State{})
	opts := append([]grpc.DialOption{
		grpc.WithResolvers(p.manual),
		grpc.WithDefaultServiceConfig(balancedServiceConfig),
		// Stay connected to every endpoint: an idle channel would reconnect
		// on the next burst and pile its first calls onto the first ready pod.
		grpc.WithIdleTimeout(0),
	}, dialOpts...)
	cc, err := grpc.NewClient(balancedScheme+":///"+name, opts...)
	if err != nil {
		return nil, fmt.Errorf("target %s: balanced channel: %w", name, err)
	}
	p.balanced = cc
	cc.Connect()
	p.lb = knowingnodev1.NewIdentityServiceClient(cc)
	return p, nil
}

// Backends returns the current backends in discovery order; read-only.
func (p *Pool) Backends() []*backend { return *p.current.Load() }

// Balanced is a client whose calls round-robin over the current endpoints.
func (p *Pool) Balanced() knowingnodev1.IdentityServiceClient { return p.lb }

// Update reconciles the pool with eps: new endpoints are dialed, vanished
// ones closed, kept ones reused.
func (p *Pool) Update(eps []discovery.Endpoint) {
	p.mu.Lock()
	defer p.mu.Unlock()
	next := make([]*backend, 0, len(eps))
	keep := make(map[string]*backend, len(eps))
	addrs := make([]resolver.Address, 0, len(eps))
	for _, ep := range eps {
		if _, dup := keep[ep.Addr]; dup {
			continue // two names for one address: one connection
		}
		b, ok := p.conns[ep.Addr]
		if !ok {
			// passthrough: the address is an IP we resolved ourselves;
			// the channel must not resolve it again.
			cc, err := grpc.NewClient("passthrough:///"+ep.Addr, p.dialOpts...)
			if err != nil {
				p.log.Error("dial failed; endpoint skipped", "addr", ep.Addr, "err", err)
				continue
			}
			cc.Connect() // warm up now rather than on the first fan-out
			b = &backend{ep: ep, cc: cc, client: knowingnodev1.NewIdentityServiceClient(cc)}
		} else if b.ep != ep {
			b = &backend{ep: ep, cc: b.cc, client: b.client} // same address, new name
		}
		keep[ep.Addr] = b
		next = append(next, b)
		addrs = append(addrs, resolver.Address{Addr: ep.Addr, ServerName: ep.DNSName})
	}
	for addr, b := range p.conns {
		if _, ok := keep[addr]; !ok {
			// A fan-out may have this connection in hand right now.
			time.AfterFunc(p.closeGrace, func() { b.cc.Close() })
		}
	}
	p.conns = keep
	p.current.Store(&next)
	p.manual.UpdateState(resolver.State{Addresses: addrs})
}

// Close closes every connection.
func (p *Pool) Close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, b := range p.conns {
		b.cc.Close()
	}
	p.conns = map[string]*backend{}
	p.current.Store(&[]*backend{})
	p.balanced.Close()
}
