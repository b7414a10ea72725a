package main

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/resolver/manual"

	"github.com/knowingnode/knowingnode/internal/load/calls"
	"github.com/knowingnode/knowingnode/internal/load/engine"
)

// staticScheme names a fixed list of addresses, as the frontend's targets do.
const staticScheme = "static:///"

// kubernetesScheme names a Service's EndpointSlices, read from the API
// server with the frontend's discovery.
const kubernetesScheme = "kubernetes:///"

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
	var conns []grpc.ClientConnInterface
	var closers []func() error
	var newBuilder func() resolver.Builder // with --refresh: each connection's resolver
	closeAll := func() {
		for _, c := range closers {
			c()
		}
	}
	if o.refresh > 0 || strings.HasPrefix(o.target, kubernetesScheme) {
		d, err := discover(o.target, o.refresh, ob)
		if err != nil {
			return nil, nil, err
		}
		closers = append(closers, func() error { d.close(); return nil })
		newBuilder = d.builder
	}
	for range o.connections {
		sc, err := o.policy.serviceConfig(o.balancing)
		if err != nil {
			closeAll()
			return nil, nil, err
		}
		cc, err := dial(o.target, sc, newBuilder, ob.dialOptions()...)
		if err != nil {
			closeAll()
			return nil, nil, err
		}
		conns = append(conns, cc)
		closers = append(closers, cc.Close)
	}
	if o.call == "fanout" {
		return calls.FanOut(o.fanout, conns...), closeAll, nil
	}
	return calls.IdentityReported(calls.IdentityOptions{LoadReports: true, HashKeys: o.policy.keys(o.balancing)}, conns...), closeAll, nil
}

// dial makes one client over target with the given service config (its
// balancing policy). A static:/// target resolves to its listed addresses;
// with newBuilder, the addresses come from it.
func dial(target, serviceConfig string, newBuilder func() resolver.Builder, extra ...grpc.DialOption) (*grpc.ClientConn, error) {
	opts := []grpc.DialOption{
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultServiceConfig(serviceConfig),
	}
	if newBuilder != nil {
		r := newBuilder()
		opts = append(opts, grpc.WithResolvers(r))
		target = r.Scheme() + ":///load"
	} else if list, ok := strings.CutPrefix(target, staticScheme); ok {
		var st resolver.State
		for a := range strings.SplitSeq(list, ",") {
			if a = strings.TrimSpace(a); a != "" {
				st.Addresses = append(st.Addresses, resolver.Address{Addr: a})
			}
		}
		if len(st.Addresses) == 0 {
			return nil, errors.New("target static:/// lists no address")
		}
		r := manual.NewBuilderWithScheme("static")
		r.InitialState(st)
		opts = append(opts, grpc.WithResolvers(r))
		target = "static:///list"
	}
	cc, err := grpc.NewClient(target, append(opts, extra...)...)
	if err != nil {
		return nil, fmt.Errorf("target %q: %w", target, err)
	}
	return cc, nil
}
