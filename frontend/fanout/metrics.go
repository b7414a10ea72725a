package fanout

import (
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/codes"

	knowingnodev1 "github.com/knowingnode/knowingnode/gen/knowingnode/v1"
	"github.com/knowingnode/knowingnode/internal/grpccode"
)

// Metrics count fan-outs and the backend calls within them. Every label is
// bounded: targets are configured, modes and codes are fixed sets ("unknown"
// otherwise), and a pod's series live only while its address is discovered
// (at most maxPodsPerAddress pods per address).
type Metrics struct {
	fanouts  *prometheus.CounterVec
	refusals *prometheus.CounterVec
	calls    *prometheus.CounterVec
	podCalls *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	size     *prometheus.HistogramVec

	mu   sync.Mutex                                 // serialises podCalls updates with forget
	pods map[string]map[string]map[podName]*podSeen // target → address → the pods seen there
	seq  uint64                                     // orders podSeen.last
}

type podName struct{ pod, node string }

// podSeen is a pod seen answering at an address, and its series (children
// resolved once, per mode).
type podSeen struct {
	last  uint64 // Metrics.seq when last seen
	calls [numModes]prometheus.Counter
}

// maxPodsPerAddress bounds the pods whose series one address keeps: behind a
// Service VIP every pod of the Service answers at one address, and over
// rollouts that set has no end. The pod seen least recently goes first.
const maxPodsPerAddress = 256

// NewMetrics registers the fan-out metrics with reg.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		fanouts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "knowingnode_fanout_requests_total",
			Help: "Fan-outs per target and mode, by result: ok (every call succeeded), partial (some failed or were not sent), failed (none succeeded), error (rejected before any call), refused (over an admission limit or shutting down). A request without a mode counts as EACH.",
		}, []string{"target", "mode", "result"}),
		refusals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "knowingnode_fanout_refused_total",
			Help: "Fan-outs refused before any call, by the limit that refused them: fanouts (max-fanouts), backend_calls (max-backend-calls), shutting_down.",
		}, []string{"limit"}),
		calls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "knowingnode_fanout_backend_calls_total",
			Help: "Backend calls of fan-outs, by gRPC code; two codes count calls not made: DRAINING (the backend's health was NOT_SERVING) and NOT_SENT (the fan-out's deadline passed before the call's turn).",
		}, []string{"target", "mode", "code"}),
		podCalls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "knowingnode_fanout_backend_pod_calls_total",
			Help: "Successful backend calls by the pod and node that answered: the spread of calls over pods. A pod's series is deleted when its address leaves discovery (or, past 256 pods seen at one address, a Service VIP, when it is the least recently seen).",
		}, []string{"target", "mode", "pod", "node"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "knowingnode_fanout_backend_call_duration_seconds",
			Help:    "Latency of every backend call sent by a fan-out (EACH and BALANCED alike, one observation per call), by gRPC code; calls not sent (DRAINING, NOT_SENT) are not observed.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}, []string{"target", "mode", "code"}),
		size: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "knowingnode_fanout_backends",
			Help:    "Backends discovered at each fan-out.",
			Buckets: []float64{1, 2, 3, 5, 10, 20, 50, 100, 200, 500, 1000},
		}, []string{"target", "mode"}),
		pods: map[string]map[string]map[podName]*podSeen{},
	}
	for _, c := range []prometheus.Collector{m.fanouts, m.refusals, m.calls, m.podCalls, m.latency, m.size} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	for _, l := range []string{limitFanOuts, limitBackendCalls, limitShuttingDown} {
		m.refusals.WithLabelValues(l) // at zero from the start
	}
	return m, nil
}

func (m *Metrics) rejected(target, mode, result string) {
	if m != nil {
		m.fanouts.WithLabelValues(target, mode, result).Inc()
	}
}

func (m *Metrics) refused(target, mode, limit string) {
	if m != nil {
		m.fanouts.WithLabelValues(target, mode, "refused").Inc()
		m.refusals.WithLabelValues(limit).Inc()
	}
}

// codeNames are the codes a metric label takes, by index: the gRPC codes,
// DRAINING, NOT_SENT, and "unknown" for a number beyond them in a backend's
// answer (which would otherwise mint a series).
var codeNames = func() []string {
	var out []string
	for c := codes.OK; c <= codes.Unauthenticated; c++ {
		out = append(out, grpccode.Name(c))
	}
	return append(out, CodeDraining, CodeNotSent, "unknown")
}()

var codeIndexes = func() map[string]int {
	m := make(map[string]int, len(codeNames))
	for i, c := range codeNames {
		m[c] = i
	}
	return m
}()

// codeIndex is c's index in codeNames; that of "unknown" for any other.
func codeIndex(c string) int {
	if i, ok := codeIndexes[c]; ok {
		return i
	}
	return len(codeNames) - 1
}

// The modes that reach observe, as indexes of targetMetrics.modes.
const (
	modeEach = iota
	modeBalanced
	numModes
)

func modeIndex(m knowingnodev1.FanOutMode) int {
	if m == knowingnodev1.FanOutMode_FAN_OUT_MODE_BALANCED {
		return modeBalanced
	}
	return modeEach
}

// targetMetrics are one target's series, each child resolved once, on its
// first use, rather than looked up by its labels on every call. nil: none.
type targetMetrics struct {
	m      *Metrics
	target string
	modes  [numModes]modeMetrics
}

type modeMetrics struct {
	name    string
	results [numResults]atomic.Pointer[prometheus.Counter]
	size    atomic.Pointer[prometheus.Observer]
	calls   []atomic.Pointer[prometheus.Counter]  // by code index
	latency []atomic.Pointer[prometheus.Observer] // by code index
}

// Fan-out results, as indexes of modeMetrics.results.
const (
	resultOK = iota
	resultPartial
	resultFailed
	numResults
)

var resultNames = [numResults]string{"ok", "partial", "failed"}

// target returns the series of the named target.
func (m *Metrics) target(name string) *targetMetrics {
	if m == nil {
		return nil
	}
	t := &targetMetrics{m: m, target: name}
	for i, mode := range []knowingnodev1.FanOutMode{knowingnodev1.FanOutMode_FAN_OUT_MODE_EACH, knowingnodev1.FanOutMode_FAN_OUT_MODE_BALANCED} {
		t.modes[i] = modeMetrics{
			name:    shortMode(mode),
			calls:   make([]atomic.Pointer[prometheus.Counter], len(codeNames)),
			latency: make([]atomic.Pointer[prometheus.Observer], len(codeNames)),
		}
	}
	return t
}

// child returns the child in p, resolving it with mk the first time; two
// racing first uses resolve the same child.
func child[T any](p *atomic.Pointer[T], mk func() T) T {
	if c := p.Load(); c != nil {
		return *c
	}
	c := mk()
	p.CompareAndSwap(nil, &c)
	return c
}

// observe records a fan-out: its results, and sent, a sample per call
// sent. live reports whether an address is discovered now: a pod answering
// on an address that has left discovery gets no series, since forget would
// never delete it.
func (t *targetMetrics) observe(mode knowingnodev1.FanOutMode, live func(addr string) bool, backends int, results []*knowingnodev1.BackendResult, sent []sample, sum *knowingnodev1.FanOutSummary) {
	if t == nil {
		return
	}
	mi := modeIndex(mode)
	mm := &t.modes[mi]
	result := resultOK
	switch notOK := sum.Failed + sum.NotSent; {
	case notOK > 0 && sum.Ok == 0:
		result = resultFailed
	case notOK > 0:
		result = resultPartial
	}
	child(&mm.results[result], func() prometheus.Counter {
		return t.m.fanouts.WithLabelValues(t.target, mm.name, resultNames[result])
	}).Inc()
	child(&mm.size, func() prometheus.Observer { return t.m.size.WithLabelValues(t.target, mm.name) }).Observe(float64(backends))
	for _, r := range results {
		ci := codeIndex(r.Code)
		child(&mm.calls[ci], func() prometheus.Counter {
			return t.m.calls.WithLabelValues(t.target, mm.name, codeNames[ci])
		}).Add(float64(max(r.Calls, 1)))
	}
	for _, s := range sent {
		child(&mm.latency[s.code], func() prometheus.Observer {
			return t.m.latency.WithLabelValues(t.target, mm.name, codeNames[s.code])
		}).Observe(s.lat.Seconds())
	}
	t.m.observePods(t.target, mi, mm.name, live, results)
}

// observePods counts the successful calls of results by the pod that
// answered, keeping at each address every pod seen there.
func (m *Metrics) observePods(target string, mi int, mode string, live func(addr string) bool, results []*knowingnodev1.BackendResult) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, r := range results {
		id := r.Identity
		if id == nil || !live(r.Address) {
			continue
		}
		byAddr := m.pods[target]
		if byAddr == nil {
			byAddr = map[string]map[podName]*podSeen{}
			m.pods[target] = byAddr
		}
		seen := byAddr[r.Address]
		if seen == nil {
			seen = map[podName]*podSeen{}
			byAddr[r.Address] = seen
		}
		pn := podName{id.PodName, id.NodeName}
		p := seen[pn]
		if p == nil {
			if len(seen) >= maxPodsPerAddress {
				m.evictOldest(target, r.Address)
			}
			p = &podSeen{}
			seen[pn] = p
		}
		m.seq++
		p.last = m.seq
		if p.calls[mi] == nil {
			p.calls[mi] = m.podCalls.WithLabelValues(target, mode, pn.pod, pn.node)
		}
		p.calls[mi].Add(float64(max(r.Calls, 1)))
	}
}

// evictOldest drops the pod seen least recently at addr. m.mu is held.
func (m *Metrics) evictOldest(target, addr string) {
	var (
		oldest podName
		last   uint64
		found  bool
	)
	for pn, p := range m.pods[target][addr] {
		if !found || p.last < last {
			oldest, last, found = pn, p.last, true
		}
	}
	if found {
		m.drop(target, addr, oldest)
	}
}

// forget deletes the pod series of addresses that left the target's
// discovery. The pool calls it after it stopped listing them, so observe
// cannot bring them back.
func (m *Metrics) forget(target string, addrs []string) {
	if m == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, a := range addrs {
		for pn := range m.pods[target][a] {
			m.drop(target, a, pn)
		}
		delete(m.pods[target], a)
	}
}

// drop forgets pod pn at addr, and deletes its series unless another
// address still reports that pod. m.mu must be held.
func (m *Metrics) drop(target, addr string, pn podName) {
	byAddr := m.pods[target]
	delete(byAddr[addr], pn)
	for _, other := range byAddr {
		if _, ok := other[pn]; ok {
			return // its series live on there
		}
	}
	m.podCalls.DeletePartialMatch(prometheus.Labels{"target": target, "pod": pn.pod, "node": pn.node})
}
