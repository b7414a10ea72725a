package main

import (
	"context"
	"fmt"
	"sync"
	"time"

	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/resolver/manual"

	"github.com/knowingnode/knowingnode/internal/discovery"
)

// discovered keeps a target's addresses fresh with the frontend's own DNS
// discovery and hands every refresh to each connection's resolver. gRPC's
// dns resolver re-resolves only after a connection is lost, so without it a
// load through a headless Service never reaches the pods an autoscaler adds.
type discovered struct {
	target *discovery.Target
	cancel context.CancelFunc
	wg     sync.WaitGroup

	closeSource func() // a kubernetes target's watcher; nil for DNS

	mu        sync.Mutex
	resolvers []*manual.Resolver
	last      resolver.State
}

// discover resolves raw (a dns, srv or statefulset target, or a
// kubernetes:/// one, watched) once, failing when that finds nothing, and
// then every refresh until close; ob (may be nil) sees every change.
func discover(raw string, refresh time.Duration, ob *observer) (*discovered, error) {
	spec, err := discovery.ParseSpec(raw)
	if err != nil {
		return nil, fmt.Errorf("target %q: %w", raw, err)
	}
	if ob == nil {
		ob = &observer{o: &options{}} // nothing observed; a kubernetes target's client from in-cluster config
	}
	d := &discovered{}
	var src discovery.Source
	var timeout time.Duration // of a refresh; 0: the default
	switch spec.QType {
	case discovery.A, discovery.SRV, discovery.StatefulSet:
		src = discovery.NewResolver(discovery.NetLookuper(spec.Server))
		ob.discovery = "dns"
	case discovery.Kubernetes:
		client, err := ob.kubeClient()
		if err != nil {
			return nil, fmt.Errorf("target %q: %w", raw, err)
		}
		w, err := discovery.NewKubernetesWatcher(client, spec, nil)
		if err != nil {
			return nil, err
		}
		d.closeSource = w.Close
		src = w
		ob.discovery = "kubernetes"
		if refresh == 0 {
			refresh = kubeRefresh
		}
		timeout = kubeFirstList
	default:
		return nil, fmt.Errorf("target %q: --refresh needs a dns, srv, statefulset or kubernetes target, not %s", raw, spec.QType)
	}
	ob.refresh = refresh
	d.target = discovery.NewTarget(spec, src, discovery.TargetOptions{Interval: refresh, Timeout: timeout, OnUpdate: d.update})
	ctx, cancel := context.WithCancel(context.Background())
	fail := func(err error) (*discovered, error) {
		cancel()
		if d.closeSource != nil {
			d.closeSource()
		}
		return nil, err
	}
	if err := d.target.Refresh(ctx); err != nil {
		return fail(fmt.Errorf("target %q: %w", raw, err))
	}
	st := d.target.State()
	if len(st.Endpoints) == 0 {
		return fail(fmt.Errorf("target %q: %s found no address", raw, spec.Query()))
	}
	if ob.tracker != nil {
		d.wg.Go(func() { followState(ctx, d.target, ob.endpoints) })
	}
	d.last = state(st.Endpoints)
	d.cancel = cancel
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		d.target.Run(ctx)
	}()
	return d, nil
}

func state(eps []discovery.Endpoint) resolver.State {
	var st resolver.State
	for _, e := range eps {
		if e.Callable() {
			st.Addresses = append(st.Addresses, resolver.Address{Addr: e.Addr})
		}
	}
	return st
}

// builder returns a resolver for one more connection, starting from the
// latest addresses.
func (d *discovered) builder() resolver.Builder {
	d.mu.Lock()
	defer d.mu.Unlock()
	r := manual.NewBuilderWithScheme("discovered")
	r.InitialState(d.last)
	d.resolvers = append(d.resolvers, r)
	return r
}

func (d *discovered) update(eps []discovery.Endpoint) {
	st := state(eps)
	if len(st.Addresses) == 0 {
		// An empty answer would fail every call; the pods that were there
		// keep getting calls until a refresh finds some again.
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.last = st
	for _, r := range d.resolvers {
		r.UpdateState(st)
	}
}

// close stops the refreshes and waits for them.
func (d *discovered) close() {
	d.cancel()
	d.wg.Wait()
	if d.closeSource != nil {
		d.closeSource()
	}
}
