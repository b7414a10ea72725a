package discovery

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/klog/v2"
)

// SliceInfo is what a Service's EndpointSlices say of one endpoint.
type SliceInfo struct {
	Known       bool // set for every endpoint of a kubernetes target
	Ready       bool
	Serving     bool
	Terminating bool
	NodeName    string
	Zone        string
	Hostname    string
	TargetRef   string // "<Kind>/<name>", e.g. "Pod/backend-0"; empty when none
	HintZones   string // topology hints, comma-separated
	HintNodes   string
	// Slices names the EndpointSlices listing this address, comma-separated:
	// more than one while the controller moves an endpoint between them.
	Slices string
}

// ResyncPeriod is how often the informer re-delivers what it holds; the
// reflector itself relists whenever its watch cannot resume.
const ResyncPeriod = 5 * time.Minute

// parseKubernetes fills sp from "<service>.<namespace>[.svc[.<zone>]]:<port>".
func parseKubernetes(sp *Spec, path string) error {
	host, port, err := net.SplitHostPort(path)
	if err != nil {
		return fmt.Errorf("want <service>.<namespace>:<port name or number>: %w", err)
	}
	labels := strings.Split(strings.TrimSuffix(host, "."), ".")
	if len(labels) < 2 || (len(labels) > 2 && labels[2] != "svc") {
		return fmt.Errorf("%q: want <service>.<namespace> (optionally followed by .svc.<cluster domain>)", host)
	}
	svc, ns := labels[0], labels[1]
	if errs := validation.IsDNS1035Label(svc); len(errs) > 0 {
		return fmt.Errorf("service name %q: %s", svc, strings.Join(errs, "; "))
	}
	if errs := validation.IsDNS1123Label(ns); len(errs) > 0 {
		return fmt.Errorf("namespace %q: %s", ns, strings.Join(errs, "; "))
	}
	if _, err := strconv.Atoi(port); err == nil {
		if err := checkPort(port); err != nil {
			return err
		}
	} else if errs := validation.IsValidPortName(port); len(errs) > 0 {
		return fmt.Errorf("port %q: want 1..65535 or a port name: %s", port, strings.Join(errs, "; "))
	}
	sp.Host, sp.Namespace, sp.Port = svc, ns, port
	return nil
}

func kubernetesQuery(s Spec) string {
	return fmt.Sprintf("EndpointSlices %s=%s in namespace %s, port %s", discoveryv1.LabelServiceName, s.Host, s.Namespace, s.Port)
}

// MergeSlices merges every EndpointSlice of one Service into one endpoint
// per address, so that no slice, address family or ordering of events loses
// or duplicates one. Each endpoint's address is its first (kube-proxy reads
// no others) with the port: a port number is dialed as given, a port name
// is looked up in each slice's ports (a slice without it contributes
// nothing). FQDN slices are skipped. An address listed by several slices
// keeps the most usable conditions (ready, then serving, then not
// terminating) and the names of all of them. The result is ordered by
// address, IPv4 first.
func MergeSlices(items []*discoveryv1.EndpointSlice, port string) []Endpoint {
	items = slices.Clone(items)
	slices.SortFunc(items, func(a, b *discoveryv1.EndpointSlice) int { return cmp.Compare(a.Name, b.Name) })
	type merged struct {
		ep     Endpoint
		ap     netip.AddrPort
		slices []string
	}
	byAddr := map[netip.AddrPort]*merged{}
	for _, s := range items {
		var want func(netip.Addr) bool
		switch s.AddressType {
		case discoveryv1.AddressTypeIPv4:
			want = netip.Addr.Is4
		case discoveryv1.AddressTypeIPv6:
			want = func(a netip.Addr) bool { return a.Is6() && !a.Is4In6() }
		default:
			continue // FQDN (deprecated) or unknown: nothing to dial
		}
		pn, ok := slicePort(s, port)
		if !ok {
			continue
		}
		for _, e := range s.Endpoints {
			if len(e.Addresses) == 0 {
				continue
			}
			ip, err := netip.ParseAddr(e.Addresses[0])
			if err != nil || !want(ip) {
				continue // not an address of this slice's family
			}
			ap := netip.AddrPortFrom(ip, pn)
			info := sliceInfo(e)
			m, dup := byAddr[ap]
			if !dup {
				m = &merged{ep: Endpoint{Addr: ap.String(), Slice: info}, ap: ap}
				byAddr[ap] = m
			} else if rank(info) > rank(m.ep.Slice) {
				m.ep.Slice = info
			}
			m.slices = append(m.slices, s.Name)
		}
	}
	all := make([]*merged, 0, len(byAddr))
	for _, m := range byAddr {
		all = append(all, m)
	}
	slices.SortFunc(all, func(a, b *merged) int { return a.ap.Compare(b.ap) })
	eps := make([]Endpoint, len(all))
	for i, m := range all {
		m.ep.Slice.Slices = strings.Join(m.slices, ",")
		eps[i] = m.ep
	}
	return eps
}

// slicePort is the port to dial for the endpoints of s.
func slicePort(s *discoveryv1.EndpointSlice, port string) (uint16, bool) {
	if n, err := strconv.ParseUint(port, 10, 16); err == nil {
		return uint16(n), true
	}
	for _, p := range s.Ports {
		if p.Name != nil && *p.Name == port && p.Port != nil && (p.Protocol == nil || *p.Protocol == "TCP") {
			return uint16(*p.Port), true
		}
	}
	return 0, false
}

func sliceInfo(e discoveryv1.Endpoint) SliceInfo {
	c := e.Conditions
	info := SliceInfo{
		Known:       true,
		Ready:       c.Ready == nil || *c.Ready, // nil means ready (API docs)
		Serving:     c.Serving == nil || *c.Serving,
		Terminating: c.Terminating != nil && *c.Terminating,
		NodeName:    deref(e.NodeName),
		Zone:        deref(e.Zone),
		Hostname:    deref(e.Hostname),
	}
	if r := e.TargetRef; r != nil {
		info.TargetRef = r.Kind + "/" + r.Name
	}
	if h := e.Hints; h != nil {
		var zs, ns []string
		for _, z := range h.ForZones {
			zs = append(zs, z.Name)
		}
		for _, n := range h.ForNodes {
			ns = append(ns, n.Name)
		}
		info.HintZones, info.HintNodes = strings.Join(zs, ","), strings.Join(ns, ",")
	}
	return info
}

func rank(s SliceInfo) int {
	r := 0
	if s.Ready {
		r += 4
	}
	if s.Serving {
		r += 2
	}
	if !s.Terminating {
		r++
	}
	return r
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// KubeClient returns an API client from the kubeconfig file at path, or,
// when path is empty, from the pod's service account (in-cluster config).
func KubeClient(path string) (kubernetes.Interface, error) {
	var cfg *rest.Config
	var err error
	if path == "" {
		cfg, err = rest.InClusterConfig()
	} else {
		cfg, err = clientcmd.BuildConfigFromFlags("", path)
	}
	if err != nil {
		return nil, fmt.Errorf("kubernetes client config (--kubeconfig %q): %w", path, err)
	}
	cfg.UserAgent = "knowingnode-frontend"
	c, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("kubernetes client: %w", err)
	}
	return c, nil
}

// KubernetesWatcher is the Source of a kubernetes:/// target: an informer
// on the Service's EndpointSlices (the kubernetes.io/service-name label, in
// its namespace), whose cache it merges on every Resolve. It tells its
// Target about every change (Changes), and remembers the last error of the
// list/watch until one succeeds again, so that a Target keeps its last
// good set and shows why while the API server is unreachable.
type KubernetesWatcher struct {
	spec     Spec
	informer cache.SharedIndexInformer
	log      *slog.Logger
	changes  chan struct{}
	cancel   context.CancelFunc
	done     chan struct{}

	mu      sync.Mutex
	lastErr error // of the last list or watch; nil once one succeeds
}

// NewKubernetesWatcher starts watching the EndpointSlices of spec's Service;
// Close stops it.
func NewKubernetesWatcher(client kubernetes.Interface, spec Spec, log *slog.Logger) (*KubernetesWatcher, error) {
	if spec.QType != Kubernetes {
		return nil, fmt.Errorf("target %q: %s is not a kubernetes:/// spec", spec.Name, spec.Raw)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	w := &KubernetesWatcher{
		spec:    spec,
		log:     log.With("target", spec.Name),
		changes: make(chan struct{}, 1),
		done:    make(chan struct{}),
	}
	api := client.DiscoveryV1().EndpointSlices(spec.Namespace)
	selector := discoveryv1.LabelServiceName + "=" + spec.Host
	lw := &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			o.LabelSelector = selector
			return untilReached(ctx, w, func(ctx context.Context) (runtime.Object, error) { return api.List(ctx, o) })
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			o.LabelSelector = selector
			return untilReached(ctx, w, func(ctx context.Context) (watch.Interface, error) { return api.Watch(ctx, o) })
		},
	}
	// The wrapper tells the reflector whether the client can stream its
	// initial list (WatchList): a real API server can, client-go's fake
	// clientset cannot.
	w.informer = cache.NewSharedIndexInformerWithOptions(cache.ToListWatcherWithWatchListSemantics(lw, client), &discoveryv1.EndpointSlice{}, cache.SharedIndexInformerOptions{
		ResyncPeriod:      ResyncPeriod,
		ObjectDescription: "EndpointSlices of " + spec.Namespace + "/" + spec.Host,
	})
	notify := func() {
		select {
		case w.changes <- struct{}{}:
		default: // one is pending: the Target reads the whole cache anyway
		}
	}
	if _, err := w.informer.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { notify() },
		UpdateFunc: func(any, any) { notify() },
		DeleteFunc: func(any) { notify() },
	}); err != nil {
		return nil, fmt.Errorf("target %q: informer handler: %w", spec.Name, err)
	}
	// A watch that breaks mid-stream arrives here; failed list and watch
	// calls are seen by observe (the reflector retries refused watches
	// without calling this).
	if err := w.informer.SetWatchErrorHandlerWithContext(func(_ context.Context, _ *cache.Reflector, err error) {
		w.observe(err)
	}); err != nil {
		return nil, fmt.Errorf("target %q: informer error handler: %w", spec.Name, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	// client-go logs through the context's logger: ours, not klog's stderr.
	ctx = klog.NewContext(ctx, logr.FromSlogHandler(w.log.Handler()))
	w.cancel = cancel
	go func() {
		defer close(w.done)
		w.informer.RunWithContext(ctx)
	}()
	return w, nil
}

// ReconnectEvery is how often, on average, a list or watch is tried again
// while the API server cannot be reached; each wait is drawn from
// ReconnectEvery ± 25% (reconnectDelay), so that many frontends cut off
// together do not relist in lockstep when it comes back.
const ReconnectEvery = time.Second

// reconnectDelay is one jittered wait between two tries.
func reconnectDelay() time.Duration {
	return wait.Jitter(ReconnectEvery*3/4, 2.0/3) // 750 ms + up to 500 ms
}

// untilReached calls f (a list or a watch) until the API server answers,
// about every ReconnectEvery, recording each outcome. client-go's reflector would
// retry too, but with a backoff that an outage pushes from 0.8 s towards
// 30 s (jittered up to twice that), and that no shared-informer option
// sets: the first list after the API server is back came 22-45 s late in
// the e2e. Retrying here, the reflector never sees the outage, and its
// backoff stays at its start. An answer, error or not, is the reflector's
// to handle.
func untilReached[T any](ctx context.Context, w *KubernetesWatcher, f func(context.Context) (T, error)) (T, error) {
	for {
		v, err := f(ctx)
		w.observe(err)
		var answered apierrors.APIStatus
		if err == nil || errors.As(err, &answered) || ctx.Err() != nil {
			return v, err
		}
		select {
		case <-ctx.Done():
			return v, err
		case <-time.After(reconnectDelay()):
		}
	}
}

// observe records the outcome of a list or watch. An expired resource
// version is routine (the reflector relists), not an outage; a canceled
// one is Close.
func (w *KubernetesWatcher) observe(err error) {
	if err != nil && (apierrors.IsResourceExpired(err) || apierrors.IsGone(err) || errors.Is(err, context.Canceled)) {
		return
	}
	w.mu.Lock()
	was := w.lastErr
	w.lastErr = err
	w.mu.Unlock()
	if (was == nil) != (err == nil) {
		if err != nil {
			w.log.Warn("EndpointSlice watch failed; keeping the last list", "query", w.spec.Query(), "err", err)
		} else {
			w.log.Info("EndpointSlice watch restored", "query", w.spec.Query())
		}
		// Let the Target show the error, or its end, now.
		select {
		case w.changes <- struct{}{}:
		default:
		}
	}
}

func (w *KubernetesWatcher) err() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.lastErr
}

// Changes delivers a value after the cached slices or the watch's health
// changed.
func (w *KubernetesWatcher) Changes() <-chan struct{} { return w.changes }

// Resolve merges the cached EndpointSlices; see MergeSlices. Before the
// first complete list it waits for one, up to ctx's deadline. While the
// list/watch fails it returns the error, and the Target keeps its last set.
func (w *KubernetesWatcher) Resolve(ctx context.Context, spec Spec) ([]Endpoint, error) {
	if spec.Raw != w.spec.Raw {
		return nil, fmt.Errorf("resolve %q: this watcher serves %q", spec.Raw, w.spec.Raw)
	}
	// cache.WaitFor is client-go's WaitForCacheSync without its 100 ms
	// polling: it returns as soon as the first list is in the store.
	if !cache.WaitFor(ctx, "", w.informer.HasSyncedChecker()) {
		cause := w.err()
		if cause == nil {
			cause = ctx.Err()
		}
		return nil, fmt.Errorf("%s: no complete list from the API server yet: %w", spec.Query(), cause)
	}
	if err := w.err(); err != nil {
		return nil, fmt.Errorf("%s: list/watch failing, last list kept: %w", spec.Query(), err)
	}
	objs := w.informer.GetStore().List()
	items := make([]*discoveryv1.EndpointSlice, 0, len(objs))
	for _, o := range objs {
		if s, ok := o.(*discoveryv1.EndpointSlice); ok {
			items = append(items, s)
		}
	}
	if len(items) == 0 {
		// The Service has no slices: it does not exist, or has no endpoints
		// controller. An answer, like NXDOMAIN: the set is empty.
		return nil, fmt.Errorf("%s: none found: %w", spec.Query(), ErrNoRecords)
	}
	return MergeSlices(items, spec.Port), nil
}

// Close stops the informer and waits for it.
func (w *KubernetesWatcher) Close() {
	w.cancel()
	<-w.done
}

// Sources makes each target's Source: a DNS Resolver, or, for kubernetes:///
// targets, a KubernetesWatcher sharing one API client.
type Sources struct {
	Kubeconfig string // empty: in-cluster config
	Logger     *slog.Logger

	client   kubernetes.Interface
	watchers []*KubernetesWatcher
}

// For returns spec's Source.
func (s *Sources) For(spec Spec) (Source, error) {
	if spec.QType != Kubernetes {
		return NewResolver(NetLookuper(spec.Server)), nil
	}
	if s.client == nil {
		c, err := KubeClient(s.Kubeconfig)
		if err != nil {
			return nil, fmt.Errorf("target %q: %w", spec.Name, err)
		}
		s.client = c
	}
	w, err := NewKubernetesWatcher(s.client, spec, s.Logger)
	if err != nil {
		return nil, err
	}
	s.watchers = append(s.watchers, w)
	return w, nil
}

// Close stops every watcher.
func (s *Sources) Close() {
	for _, w := range s.watchers {
		w.Close()
	}
	s.watchers = nil
}
