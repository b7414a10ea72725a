package matrix

import (
	"fmt"
	"slices"
	"sync"

	"google.golang.org/grpc"

	knowingnodev1 "github.com/knowingnode/knowingnode/gen/knowingnode/v1"
	"github.com/knowingnode/knowingnode/internal/discovery"
)

// Peers holds a connection to every peer frontend that discovery (of the
// frontend tier's headless Service, configured at start-up) lists. Give
// Update to discovery.TargetOptions.OnUpdate.
type Peers struct {
	dialOpts []grpc.DialOption

	mu     sync.Mutex
	conns  map[string]*grpc.ClientConn // by address
	order  []string                    // in discovery order
	closed bool
}

// NewPeers returns an empty set; dialOpts are used for every peer.
func NewPeers(dialOpts ...grpc.DialOption) *Peers {
	return &Peers{dialOpts: dialOpts, conns: map[string]*grpc.ClientConn{}}
}

// Update makes the set the callable endpoints of eps: dials new ones and
// closes those gone. A peer that cannot be dialled (a malformed address)
// is left out.
func (p *Peers) Update(eps []discovery.Endpoint) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return
	}
	keep := map[string]bool{}
	var order []string
	for _, ep := range eps {
		if !ep.Callable() || keep[ep.Addr] {
			continue
		}
		keep[ep.Addr] = true
		if _, ok := p.conns[ep.Addr]; !ok {
			cc, err := grpc.NewClient(ep.Addr, p.dialOpts...)
			if err != nil {
				continue
			}
			p.conns[ep.Addr] = cc
		}
		order = append(order, ep.Addr)
	}
	for addr, cc := range p.conns {
		if !keep[addr] {
			cc.Close()
			delete(p.conns, addr)
		}
	}
	p.order = order
}

type peer struct {
	addr   string
	client knowingnodev1.FanOutServiceClient
}

// list is the current peers. A connection closed by a later Update fails
// its calls with CANCELED, which the matrix reports in that row.
func (p *Peers) list() []peer {
	if p == nil {
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]peer, 0, len(p.order))
	for _, a := range p.order {
		out = append(out, peer{a, knowingnodev1.NewFanOutServiceClient(p.conns[a])})
	}
	return out
}

// Addrs are the current peers' addresses.
func (p *Peers) Addrs() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.order)
}

// Close closes every connection; Update does nothing afterwards.
func (p *Peers) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	var errs []error
	for addr, cc := range p.conns {
		if err := cc.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close peer %s: %w", addr, err))
		}
	}
	p.conns, p.order = nil, nil
	if len(errs) > 0 {
		return errs[0]
	}
	return nil
}
