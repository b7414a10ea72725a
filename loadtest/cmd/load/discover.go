package main

import (
	"context"
	"fmt"
	"sync"
	"time"

	"google.golang.org/grpc/resolver"

	"github.com/knowingnode/knowingnode/internal/discovery"
)

// firstAnswerSlack is how long past its refresh timeout the load waits for
// a target's first answer: the refresh always ends by then, so only a
// resolver that never started (its Build failed) takes it.
const firstAnswerSlack = 5 * time.Second

// resolvers resolve the load's target with internal/discovery's gRPC
// resolvers, the ones any gRPC client can use (discovery.Builders): gRPC's
// dns resolver re-resolves only after a connection is lost, so without them
// a load through a headless Service never reaches the pods an autoscaler
// adds. The --connections clients share one discovery loop, whose every
// state (Options.OnChange) marks the pods' lifecycle for the report and
// says when the target first resolved.
type resolvers struct {
	builders   []resolver.Builder
	discovered bool // --refresh or kubernetes:///: discovery's loop, not gRPC's dns
	wait       time.Duration
	first      chan discovery.State // the target's first state; buffered
	once       sync.Once
}

// newResolvers returns the resolvers of o's target; ob sees each change of
// a discovered one.
func newResolvers(o *options, ob *observer) (*resolvers, error) {
	r := &resolvers{first: make(chan discovery.State, 1)}
	var opts discovery.Options
	// Only a discovery spec is discovered: gRPC's own schemes (passthrough,
	// unix) are gRPC's, and parseFlags has checked every other target.
	if spec, err := discovery.ParseSpec(o.target); err == nil && (spec.QType == discovery.Kubernetes || o.refresh > 0 && spec.QType != discovery.Static) {
		if opts, err = ob.discoveryOptions(spec, o.refresh); err != nil {
			return nil, fmt.Errorf("target %q: %w", o.target, err)
		}
		r.discovered = true
		r.wait = opts.Timeout + firstAnswerSlack
		opts.OnChange = func(_ string, st discovery.State) {
			r.once.Do(func() { r.first <- st })
			ob.endpoints(st.LastRefresh, st.Endpoints)
		}
	}
	for _, b := range discovery.Builders(opts) {
		if b.Scheme() == string(discovery.A) && o.refresh == 0 {
			continue // without --refresh, dns:/// stays gRPC's own
		}
		r.builders = append(r.builders, b)
	}
	return r, nil
}

// ready waits for a discovered target's first answer (its resolvers are
// built, the clients out of idle), and fails, naming the target, when it is
// an error or finds no address: a load never starts without a backend.
func (r *resolvers) ready(target string) error {
	if !r.discovered {
		return nil
	}
	select {
	case st := <-r.first:
		if st.LastError != nil {
			return fmt.Errorf("target %q: %w", target, st.LastError)
		}
		if len(st.Endpoints) == 0 {
			return fmt.Errorf("target %q: %s found no address", target, st.Spec.Query())
		}
		return nil
	case <-time.After(r.wait):
		return fmt.Errorf("target %q: no answer from discovery in %v", target, r.wait)
	}
}

// discoveryOptions are the discovery options of a dns, srv, statefulset or
// kubernetes:/// target refreshed every refresh (0: a kubernetes:///
// target's default, kubeRefresh), and what the report says they are.
func (ob *observer) discoveryOptions(spec discovery.Spec, refresh time.Duration) (discovery.Options, error) {
	o := discovery.Options{Refresh: refresh}
	switch spec.QType {
	case discovery.A, discovery.SRV, discovery.StatefulSet:
		ob.discovery = "dns"
	case discovery.Kubernetes:
		client, err := ob.kubeClient()
		if err != nil {
			return o, err
		}
		o.Kube = client
		if o.Refresh == 0 {
			o.Refresh = kubeRefresh
		}
		o.Timeout = kubeFirstList
		ob.discovery = "kubernetes"
	default:
		return o, fmt.Errorf("--refresh needs a dns, srv, statefulset or kubernetes target, not %s", spec.QType)
	}
	if o.Timeout == 0 {
		o.Timeout = min(o.Refresh, 5*time.Second) // discovery's default, said here for the first answer's wait
	}
	ob.refresh = o.Refresh
	return o, nil
}

// lifecycle follows a target the load does not call (--lifecycle-from) for
// the report. No gRPC client dials it, so it is a discovery.Target of its
// own rather than a resolver.
type lifecycle struct {
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	watcher *discovery.KubernetesWatcher // nil but for kubernetes:///
}

// followLifecycle resolves raw once, failing when that finds nothing, then
// hands ob every change until close.
func followLifecycle(raw string, refresh time.Duration, ob *observer) (*lifecycle, error) {
	spec, err := discovery.ParseSpec(raw)
	if err != nil {
		return nil, fmt.Errorf("target %q: %w", raw, err)
	}
	opts, err := ob.discoveryOptions(spec, refresh)
	if err != nil {
		return nil, fmt.Errorf("target %q: %w", raw, err)
	}
	l := &lifecycle{}
	var src discovery.Source = discovery.NewResolver(discovery.NetLookuper(spec.Server))
	if spec.QType == discovery.Kubernetes {
		if l.watcher, err = discovery.NewKubernetesWatcher(opts.Kube, spec, nil); err != nil {
			return nil, err
		}
		src = l.watcher
	}
	target := discovery.NewTarget(spec, src, discovery.TargetOptions{Interval: opts.Refresh, Timeout: opts.Timeout})
	var ctx context.Context
	ctx, l.cancel = context.WithCancel(context.Background())
	if err := target.Refresh(ctx); err != nil {
		l.close()
		return nil, fmt.Errorf("target %q: %w", raw, err)
	}
	if len(target.State().Endpoints) == 0 {
		l.close()
		return nil, fmt.Errorf("target %q: %s found no address", raw, spec.Query())
	}
	l.wg.Go(func() { followState(ctx, target, ob.endpoints) })
	l.wg.Go(func() { target.Run(ctx) })
	return l, nil
}

// close stops the refreshes and the watch, and waits for them.
func (l *lifecycle) close() {
	l.cancel()
	l.wg.Wait()
	if l.watcher != nil {
		l.watcher.Close()
	}
}
