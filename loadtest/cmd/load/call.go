package main

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/resolver"

	"github.com/knowingnode/knowingnode/internal/load/calls"
	"github.com/knowingnode/knowingnode/internal/load/engine"
)

// staticScheme names a fixed list of addresses, as the frontend's targets do.
const staticScheme = "static:///"

// newCaller builds the call o asks for and a function that releases it.
func newCaller(o *options, ob *observer) (engine.Caller, func(), error) {
	if o.call == "rest" {
		base := o.target
		if !strings.Contains(base, "://") {
			base = "http://" + base
		}
		u, err := url.Parse(strings.TrimSuffix(base, "/") + o.path)
		if err != nil {
			// parseFlags has checked it: this is a bug if it happens.
			return nil, nil, fmt.Errorf("target %q with path %q: %w", o.target, o.path, err)
		}
		tr := &http.Transport{MaxIdleConnsPerHost: o.engine.Concurrency, MaxConnsPerHost: o.connections * o.engine.Concurrency, IdleConnTimeout: 90 * time.Second}
		return calls.REST(&http.Client{Transport: tr}, u.String()), tr.CloseIdleConnections, nil
	}
	if ob == nil {
		ob = &observer{o: o} // a worker's: nothing observed, a kubernetes:/// target's client from its flags
	}
	res, err := newResolvers(o, ob)
	if err != nil {
		return nil, nil, err
	}
	var conns []grpc.ClientConnInterface
	var ccs []*grpc.ClientConn
	closeAll := func() {
		for _, cc := range ccs {
			cc.Close() // joins its resolver; the last one, the discovery loop
		}
	}
	for range o.connections {
		sc, err := o.policy.serviceConfig(o.balancing)
		if err != nil {
			closeAll()
			return nil, nil, err
		}
		cc, err := dial(o.target, sc, res.builders, ob.dialOptions()...)
		if err != nil {
			closeAll()
			return nil, nil, err
		}
		conns = append(conns, cc)
		ccs = append(ccs, cc)
	}
	if res.discovered {
		// Out of idle, each client builds its resolver: the first starts
		// the target's discovery loop, the others join it.
		for _, cc := range ccs {
			cc.Connect()
		}
		if err := res.ready(o.target); err != nil {
			closeAll()
			return nil, nil, err
		}
	}
	if o.call == "fanout" {
		return calls.FanOut(o.fanout, conns...), closeAll, nil
	}
	return calls.IdentityReported(calls.IdentityOptions{LoadReports: true, HashKeys: o.policy.keys(o.balancing)}, conns...), closeAll, nil
}

// dial makes one client over target with the given service config (its
// balancing policy), resolved by builders: internal/discovery's, of
// every scheme it names (static:///, kubernetes:///, and with --refresh
// dns, srv, statefulset), gRPC's own for the rest.
func dial(target, serviceConfig string, builders []resolver.Builder, extra ...grpc.DialOption) (*grpc.ClientConn, error) {
	opts := []grpc.DialOption{
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultServiceConfig(serviceConfig),
		grpc.WithResolvers(builders...),
	}
	cc, err := grpc.NewClient(target, append(opts, extra...)...)
	if err != nil {
		return nil, fmt.Errorf("target %q: %w", target, err)
	}
	return cc, nil
}
