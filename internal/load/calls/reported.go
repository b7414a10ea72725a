package calls

import (
	"context"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	knowingnodev1 "github.com/knowingnode/knowingnode/gen/knowingnode/v1"
	"github.com/knowingnode/knowingnode/internal/balancing"
	"github.com/knowingnode/knowingnode/internal/load/engine"
)

// IdentityOptions add to Identity what a balancing experiment needs.
type IdentityOptions struct {
	// LoadReports reads the ORCA load report each backend returns in the
	// call's trailer into the result. A backend gives each connection each
	// new sample once (unless --orca-every-call): a call whose trailer has
	// none carries the last report its pod returned.
	LoadReports bool
	// HashKeys > 0 gives each call one of that many keys, drawn uniformly,
	// in balancing.HashHeader: ring_hash sends a key's calls to one pod.
	HashKeys int
}

// HashKey is the i-th key of the set IdentityOptions.HashKeys draws from.
func HashKey(i int) string { return "key-" + strconv.Itoa(i) }

// IdentityReported is Identity with o's additions; a backend found draining
// is engine.ErrDraining, as with Identity.
func IdentityReported(o IdentityOptions, conns ...grpc.ClientConnInterface) engine.Caller {
	if !o.LoadReports && o.HashKeys <= 0 {
		return Identity(conns...)
	}
	clients := make([]knowingnodev1.IdentityServiceClient, len(conns))
	for i, c := range conns {
		clients[i] = knowingnodev1.NewIdentityServiceClient(c)
	}
	var next atomic.Uint64
	req := &knowingnodev1.GetIdentityRequest{}
	var last lastLoads
	return func(ctx context.Context) (engine.Result, error) {
		c := clients[next.Add(1)%uint64(len(clients))]
		if o.HashKeys > 0 {
			ctx = metadata.AppendToOutgoingContext(ctx, balancing.HashHeader, HashKey(rand.IntN(o.HashKeys)))
		}
		var trailer metadata.MD
		var opts []grpc.CallOption
		if o.LoadReports {
			opts = append(opts, grpc.Trailer(&trailer))
		}
		resp, err := c.GetIdentity(ctx, req, opts...)
		if err != nil {
			return engine.Result{}, Draining(err) // as Identity does
		}
		id := resp.GetIdentity()
		r := engine.Result{Pod: id.GetPodName(), Node: id.GetNodeName(), Zone: id.GetZone()}
		if rep, ok := balancing.ParseTrailer(trailer); ok {
			r.Load = &engine.Load{CPUUtilization: rep.CPUUtilization, ApplicationUtilization: rep.ApplicationUtilization,
				QPS: rep.QPS, EPS: rep.EPS, Weight: rep.Weight()}
			last.put(r.Pod, r.Load)
		} else if o.LoadReports {
			r.Load = last.get(r.Pod)
		}
		return r, nil
	}
}

// lastLoads is the last load report of each pod, for at most engine.MaxKeys
// pods (as many as a result names): past them a pod shows the reports in its
// calls' trailers alone.
type lastLoads struct {
	m sync.Map // pod → *engine.Load
	n atomic.Int32
}

func (l *lastLoads) put(pod string, load *engine.Load) {
	if pod == "" {
		return
	}
	if _, ok := l.m.Load(pod); ok {
		l.m.Store(pod, load)
		return
	}
	if l.n.Add(1) > engine.MaxKeys {
		l.n.Add(-1)
		return
	}
	if _, loaded := l.m.LoadOrStore(pod, load); loaded { // another call's, just now
		l.n.Add(-1)
		l.m.Store(pod, load)
	}
}

func (l *lastLoads) get(pod string) *engine.Load {
	if v, ok := l.m.Load(pod); ok {
		return v.(*engine.Load)
	}
	return nil
}
