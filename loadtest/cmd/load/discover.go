package main

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"time"

	"google.golang.org/grpc/resolver"

	"github.com/knowingnode/knowingnode/internal/discovery"
)

// discovered resolves a target with internal/discovery's gRPC resolver
// (discovery.Builders), re-resolving it every refresh: gRPC's own dns
// resolver re-resolves only after a connection is lost, so without it a
// load through a headless Service never reaches the pods an autoscaler
// adds. Each connection runs its own resolver, closed with it.
type discovered struct {
	target resolver.Target  // the target as given, for the inner builder
	inner  resolver.Builder // discovery's builder of the target's scheme
}

// discover checks raw (a dns, srv or statefulset target) and resolves it
// once, failing when that finds nothing, so a load never starts without a
// backend.
func discover(raw string, refresh time.Duration) (*discovered, error) {
	spec, err := discovery.ParseSpec(raw)
	if err != nil {
		return nil, fmt.Errorf("target %q: %w", raw, err)
	}
	switch spec.QType {
	case discovery.A, discovery.SRV, discovery.StatefulSet:
	default:
		return nil, fmt.Errorf("target %q: --refresh needs a dns, srv or statefulset target, not %s", raw, spec.QType)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	eps, err := discovery.NewResolver(discovery.NetLookuper(spec.Server)).Resolve(ctx, spec)
	if err != nil {
		return nil, fmt.Errorf("target %q: %w", raw, err)
	}
	if len(eps) == 0 {
		return nil, fmt.Errorf("target %q: %s found no address", raw, spec.Query())
	}
	if !strings.Contains(raw, "://") {
		raw = string(discovery.A) + ":///" + raw // as ParseSpec reads it
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("target %q: %w", raw, err)
	}
	d := &discovered{target: resolver.Target{URL: *u}}
	for _, b := range discovery.Builders(discovery.Options{Refresh: refresh}) {
		if b.Scheme() == string(spec.QType) {
			d.inner = b
		}
	}
	return d, nil
}

// builder returns the resolver builder of one more connection; whatever
// target that connection names, it resolves the discovered one.
func (d *discovered) builder() resolver.Builder { return d }

// Scheme is the scheme dial gives its target.
func (d *discovered) Scheme() string { return "discovered" }

// Build starts discovery's resolver for the target given to discover.
func (d *discovered) Build(_ resolver.Target, cc resolver.ClientConn, o resolver.BuildOptions) (resolver.Resolver, error) {
	return d.inner.Build(d.target, cc, o)
}

// close is kept for newCaller: each resolver stops with its connection.
func (d *discovered) close() {}
