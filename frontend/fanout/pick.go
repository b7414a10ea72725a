package fanout

import (
	"context"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	knowingnodev1 "github.com/knowingnode/knowingnode/gen/knowingnode/v1"
)

// Pick returns the client of the current endpoint n modulo their number,
// each over its endpoint's own connection; nil when there is none. The load
// service rotates over them.
func (p *Pool) Pick(n uint64) knowingnodev1.IdentityServiceClient {
	bs := p.Backends()
	if len(bs) == 0 {
		return nil
	}
	return bs[n%uint64(len(bs))].client
}

// balancedAttempts is how many endpoints one BALANCED call tries when each
// answers UNAVAILABLE, as a gRPC retry policy of maxAttempts 3 would.
const balancedAttempts = 3

// roundRobin is a client of round robin over the pool's own
// per-endpoint connections, so that a frontend holds one connection (and
// one health watch) per endpoint, not a second set in a round_robin
// channel; at 1,000 endpoints that second set cost ~100 MB. It does what
// that channel did: picks only endpoints whose connection is READY (each
// one is health checked, so a draining pod's is not), and tries a call
// that met UNAVAILABLE again on the next endpoint. The frontend's load
// (frontend/load) uses it; BALANCED fan-outs pick under their policy
// (policy.go), round robin sharing its counter.
type roundRobin struct {
	p    *Pool
	next atomic.Uint64
}

func (r *roundRobin) GetIdentity(ctx context.Context, in *knowingnodev1.GetIdentityRequest, opts ...grpc.CallOption) (*knowingnodev1.GetIdentityResponse, error) {
	n := r.next.Add(1)
	var err error
	for try := range uint64(balancedAttempts) {
		b := r.pick(n + try)
		if b == nil {
			return nil, status.Errorf(codes.Unavailable, "target %s: no endpoints discovered", r.p.name)
		}
		var resp *knowingnodev1.GetIdentityResponse
		var trailer metadata.MD
		// A full slice expression: append copies rather than write into
		// spare capacity of a slice the caller may share between calls.
		resp, err = b.client.GetIdentity(ctx, in, append(opts[:len(opts):len(opts)], grpc.Trailer(&trailer))...)
		if len(trailer) > 0 {
			// The connection's load report is the BALANCED policies' too.
			b.lb.observe(trailer, time.Now())
		}
		if status.Code(err) != codes.Unavailable || ctx.Err() != nil {
			return resp, err
		}
	}
	return nil, err
}

// pick returns the first endpoint from n on (modulo their number) whose
// connection is READY, or, when none is, endpoint n itself: its channel
// then decides, waiting while it connects or failing with why it cannot
// (a draining pod's health status included).
func (r *roundRobin) pick(n uint64) *backend {
	bs := r.p.Backends()
	if len(bs) == 0 {
		return nil
	}
	if b := readyFrom(bs, n, &tries{}); b != nil {
		return b
	}
	return bs[n%uint64(len(bs))]
}
