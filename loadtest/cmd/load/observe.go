package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"k8s.io/client-go/kubernetes"

	"github.com/knowingnode/knowingnode/internal/discovery"
	"github.com/knowingnode/knowingnode/internal/grpccode"
	"github.com/knowingnode/knowingnode/internal/load/engine"
	"github.com/knowingnode/knowingnode/internal/load/livemetrics"
	"github.com/knowingnode/knowingnode/internal/load/report"
	"github.com/knowingnode/knowingnode/loadtest/hpa"
)

// observeOptions are the flags of what watches a run besides its windows:
// the HTML report, the autoscalers it follows and the live metrics.
type observeOptions struct {
	report      string
	hpas        string // comma-separated [namespace/]name
	kubeconfig  string
	metricsAddr string
	lifecycle   string               // a target watched only for the report, e.g. the Service behind a ClusterIP
	client      kubernetes.Interface // tests: the API client instead of --kubeconfig's
}

// kubeRefresh is the periodic re-read of a kubernetes:/// target without
// --refresh; its watch delivers every change at once anyway.
const kubeRefresh = 30 * time.Second

// kubeFirstList bounds the wait for a kubernetes:/// target's first list
// from the API server.
const kubeFirstList = 10 * time.Second

// lifecycleRefresh re-resolves a --lifecycle-from DNS target without --refresh.
const lifecycleRefresh = time.Second

// maxHPAs bounds --hpa.
const maxHPAs = 10

func addObserveFlags(fs *flag.FlagSet, o *observeOptions) {
	fs.StringVar(&o.report, "report", "", "write one self-contained HTML report of the run (charts, pod lifecycle, autoscaler decisions, tables) to this file")
	fs.StringVar(&o.hpas, "hpa", "", "follow these HorizontalPodAutoscalers' decisions for the report: [namespace/]name, comma-separated (namespace: the kubernetes:/// target's, else the pod's, else default)")
	fs.StringVar(&o.kubeconfig, "kubeconfig", os.Getenv("KUBECONFIG"), "kubeconfig for kubernetes:/// targets and --hpa (default $KUBECONFIG; empty: in-cluster)")
	fs.StringVar(&o.lifecycle, "lifecycle-from", "", "for --report: follow the pods' lifecycle from this kubernetes:/// (or dns) target, without calling through it, e.g. the Service behind a ClusterIP --target")
	fs.StringVar(&o.metricsAddr, "metrics-addr", "", "serve the load's own Prometheus metrics on this address (/metrics) while it runs")
}

func (o *observeOptions) validate(bad func(flag, format string, args ...any)) {
	if o.report != "" && !strings.HasSuffix(strings.ToLower(o.report), ".html") {
		bad("report", "%q: want a file name ending in .html", o.report)
	}
	if o.lifecycle != "" {
		if o.report == "" {
			bad("lifecycle-from", "only feeds --report, which is not set")
		}
		if sp, err := discovery.ParseSpec(o.lifecycle); err != nil {
			bad("lifecycle-from", "%v", err)
		} else if sp.QType == discovery.Static {
			bad("lifecycle-from", "%q: a static list has no lifecycle", o.lifecycle)
		}
	}
	if names := o.hpaNames(); len(names) > maxHPAs {
		bad("hpa", "%d HPAs; at most %d", len(names), maxHPAs)
	}
}

func (o *observeOptions) hpaNames() []string {
	var names []string
	for n := range strings.SplitSeq(o.hpas, ",") {
		if n = strings.TrimSpace(n); n != "" {
			names = append(names, n)
		}
	}
	return names
}

// observer feeds the report and the live metrics from the calls, the
// discovery and the autoscalers. Close joins what it started.
type observer struct {
	o         *options
	tracker   *report.Tracker // nil without --report
	metrics   *livemetrics.Metrics
	server    *livemetrics.Server
	follower  *hpa.Follower
	watched   *lifecycle // --lifecycle-from
	client    kubernetes.Interface
	discovery string        // what the lifecycle marks come from
	refresh   time.Duration // and how often it is re-read

	mu        sync.Mutex
	windows   []*engine.Stats
	decisions []report.Decision
}

func newObserver(ctx context.Context, o *options) (*observer, error) {
	ob := &observer{o: o}
	if o.obs.report != "" {
		ob.tracker = report.NewTracker()
	}
	if o.obs.metricsAddr != "" {
		ob.metrics = livemetrics.New(o.engine.Rate)
		s, err := livemetrics.Serve(ctx, o.obs.metricsAddr, ob.metrics)
		if err != nil {
			return nil, err
		}
		ob.server = s
	}
	if names := o.obs.hpaNames(); len(names) > 0 {
		if err := ob.followHPAs(ctx, names); err != nil {
			return nil, errors.Join(err, ob.stop())
		}
	}
	if o.obs.lifecycle != "" && ob.tracker != nil {
		refresh := o.refresh
		if refresh == 0 {
			refresh = lifecycleRefresh
		}
		l, err := followLifecycle(o.obs.lifecycle, refresh, ob)
		if err != nil {
			return nil, errors.Join(fmt.Errorf("--lifecycle-from: %w", err), ob.stop())
		}
		ob.watched = l
	}
	return ob, nil
}

// kubeClient is the one API client of discovery and --hpa.
func (ob *observer) kubeClient() (kubernetes.Interface, error) {
	if ob.client == nil && ob.o.obs.client != nil {
		ob.client = ob.o.obs.client
	}
	if ob.client == nil {
		c, err := discovery.KubeClient(ob.o.obs.kubeconfig)
		if err != nil {
			return nil, err
		}
		ob.client = c
	}
	return ob.client, nil
}

func (ob *observer) followHPAs(ctx context.Context, names []string) error {
	client, err := ob.kubeClient()
	if err != nil {
		return fmt.Errorf("--hpa: %w", err)
	}
	byNS := map[string][]string{}
	for _, n := range names {
		ns, name, ok := strings.Cut(n, "/")
		if !ok {
			ns, name = defaultNamespace(ob.o.target), n
		}
		byNS[ns] = append(byNS[ns], name)
	}
	if len(byNS) > 1 {
		return fmt.Errorf("--hpa %s: HPAs of one namespace only", ob.o.obs.hpas)
	}
	for ns, nsNames := range byNS {
		f, err := hpa.Follow(ctx, client, ns, nsNames, nil, func(d hpa.Decision) {
			ob.mu.Lock()
			defer ob.mu.Unlock()
			ob.decisions = append(ob.decisions, report.Decision(d))
		})
		if err != nil {
			return err
		}
		ob.follower = f
	}
	return nil
}

// defaultNamespace is a kubernetes:/// target's namespace, else the pod's
// own, else "default".
func defaultNamespace(target string) string {
	if sp, err := discovery.ParseSpec(target); err == nil && sp.QType == discovery.Kubernetes {
		return sp.Namespace
	}
	if b, err := os.ReadFile("/var/run/secrets/kubernetes.io/serviceaccount/namespace"); err == nil && len(b) > 0 {
		return strings.TrimSpace(string(b))
	}
	return "default"
}

// peerSlot carries the address a gRPC call reached back to the wrapper.
type peerSlot struct{ addr string }

type peerKey struct{}

// dialOptions record, for the report, which address each call reached.
func (ob *observer) dialOptions() []grpc.DialOption {
	if ob == nil || ob.tracker == nil {
		return nil
	}
	return []grpc.DialOption{grpc.WithChainUnaryInterceptor(func(ctx context.Context, method string, req, reply any,
		cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		slot, _ := ctx.Value(peerKey{}).(*peerSlot)
		if slot == nil {
			return invoker(ctx, method, req, reply, cc, opts...)
		}
		var p peer.Peer
		err := invoker(ctx, method, req, reply, cc, append(opts, grpc.Peer(&p))...)
		if p.Addr != nil {
			slot.addr = p.Addr.String()
		}
		return err
	})}
}

// wrap counts each call for the metrics and the report.
func (ob *observer) wrap(call engine.Caller) engine.Caller {
	if ob.tracker == nil && ob.metrics == nil {
		return call
	}
	return func(ctx context.Context) (engine.Result, error) {
		slot := &peerSlot{}
		start := time.Now()
		res, err := call(context.WithValue(ctx, peerKey{}, slot))
		if err != nil && ctx.Err() != nil {
			return res, err // the run is stopping: says nothing of the target
		}
		if ob.metrics != nil {
			ob.metrics.Call(time.Since(start), grpccode.Name(status.Code(err)), res.Pod)
		}
		if err == nil && ob.tracker != nil {
			ob.tracker.Call(start, slot.addr, res.Pod, res.Node, res.Zone)
		}
		return res, err
	}
}

// window takes each closed window.
func (ob *observer) window(w *engine.Stats) {
	if ob.metrics != nil {
		ob.metrics.Window(w)
	}
	if ob.tracker != nil {
		ob.mu.Lock()
		ob.windows = append(ob.windows, w)
		ob.mu.Unlock()
	}
}

// endpoints takes what a discovery refresh at time at found.
func (ob *observer) endpoints(at time.Time, eps []discovery.Endpoint) {
	if ob == nil || ob.tracker == nil {
		return
	}
	out := make([]report.Endpoint, len(eps))
	for i, e := range eps {
		s := e.Slice
		out[i] = report.Endpoint{Addr: e.Addr, Node: s.NodeName, Zone: s.Zone, Known: s.Known,
			Ready: s.Ready, Serving: s.Serving, Terminating: s.Terminating}
		if kind, name, ok := strings.Cut(s.TargetRef, "/"); ok && kind == "Pod" {
			out[i].Pod = name
		}
	}
	ob.tracker.Observe(at, out)
}

// followState hands every change of t's state to on, until ctx ends.
func followState(ctx context.Context, t *discovery.Target, on func(time.Time, []discovery.Endpoint)) {
	var version uint64
	first := true
	for {
		st, changed := t.Watch()
		if first || st.Version != version {
			first, version = false, st.Version
			on(st.LastRefresh, st.Endpoints)
		}
		select {
		case <-ctx.Done():
			return
		case <-changed:
		}
	}
}

// stop ends the autoscaler watches, --lifecycle-from and the metrics server.
func (ob *observer) stop() error {
	if ob.watched != nil {
		ob.watched.close()
		ob.watched = nil
	}
	if ob.follower != nil {
		ob.follower.Close()
		ob.follower = nil
	}
	if ob.server != nil {
		err := ob.server.Close()
		ob.server = nil
		return err
	}
	return nil
}

// close stops what ob started and writes the report.
func (ob *observer) close(args []string, sum *engine.Stats) error {
	err := ob.stop()
	if ob.tracker == nil || sum == nil {
		return err
	}
	ob.mu.Lock()
	r := report.Run{Title: "load " + ob.o.target, Args: args, Target: ob.o.target, Call: ob.o.call,
		Discovery: ob.discovery, Windows: ob.windows, Summary: sum, Tracker: ob.tracker, Decisions: ob.decisions}
	ob.mu.Unlock()
	if ob.discovery != "" {
		r.Refresh = ob.refresh
	}
	if werr := report.WriteFile(ob.o.obs.report, r); werr != nil {
		err = errors.Join(err, fmt.Errorf("--report: %w", werr))
	}
	return err
}
