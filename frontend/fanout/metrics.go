package fanout

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/codes"

	knowingnodev1 "github.com/knowingnode/knowingnode/gen/knowingnode/v1"
	"github.com/knowingnode/knowingnode/internal/grpccode"
)

// Metrics count fan-outs and the backend calls within them. Every label is
// bounded: targets are configured, modes and codes are fixed sets ("unknown"
// otherwise), and a pod's series live only while its address is discovered.
type Metrics struct {
	fanouts  *prometheus.CounterVec
	refusals *prometheus.CounterVec
	calls    *prometheus.CounterVec
	podCalls *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	size     *prometheus.HistogramVec

	mu   sync.Mutex                    // serialises podCalls updates with forget
	pods map[string]map[string]podName // target → address → the pod last seen there
}

type podName struct{ pod, node string }

// NewMetrics registers the fan-out metrics with reg.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		fanouts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "knowingnode_fanout_requests_total",
			Help: "Fan-outs per target and mode, by result: ok (every call succeeded), partial (some failed), failed (all failed), error (rejected before any call), refused (over an admission limit or shutting down).",
		}, []string{"target", "mode", "result"}),
		refusals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "knowingnode_fanout_refused_total",
			Help: "Fan-outs refused before any call, by the limit that refused them: fanouts (max-fanouts), backend_calls (max-backend-calls), shutting_down.",
		}, []string{"limit"}),
		calls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "knowingnode_fanout_backend_calls_total",
			Help: "Backend calls made by fan-outs, by gRPC code; DRAINING counts backends skipped because their health was NOT_SERVING.",
		}, []string{"target", "mode", "code"}),
		podCalls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "knowingnode_fanout_backend_pod_calls_total",
			Help: "Successful backend calls by the pod and node that answered: the spread of calls over pods. A pod's series is deleted when its address leaves discovery.",
		}, []string{"target", "mode", "pod", "node"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "knowingnode_fanout_backend_call_duration_seconds",
			Help:    "Latency of one backend call within a fan-out, by gRPC code (BALANCED: the first call of each group).",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}, []string{"target", "mode", "code"}),
		size: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "knowingnode_fanout_backends",
			Help:    "Backends discovered at each fan-out.",
			Buckets: []float64{1, 2, 3, 5, 10, 20, 50, 100, 200, 500, 1000},
		}, []string{"target", "mode"}),
		pods: map[string]map[string]podName{},
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

// codeLabel bounds a code taken from a backend's answer: a number beyond the
// gRPC codes would otherwise mint a series.
func codeLabel(c string) string {
	if knownCodes[c] {
		return c
	}
	return "unknown"
}

var knownCodes = func() map[string]bool {
	m := map[string]bool{CodeDraining: true}
	for c := codes.OK; c <= codes.Unauthenticated; c++ {
		m[grpccode.Name(c)] = true
	}
	return m
}()

// observe records a fan-out. live reports whether an address is discovered
// now: a pod answering on an address that has left discovery gets no series,
// since forget would never delete it.
func (m *Metrics) observe(target, mode string, live func(addr string) bool, backends int, results []*knowingnodev1.BackendResult, sum *knowingnodev1.FanOutSummary) {
	if m == nil {
		return
	}
	result := "ok"
	switch {
	case sum.Failed > 0 && sum.Ok == 0:
		result = "failed"
	case sum.Failed > 0:
		result = "partial"
	}
	m.fanouts.WithLabelValues(target, mode, result).Inc()
	m.size.WithLabelValues(target, mode).Observe(float64(backends))
	for _, r := range results {
		n := float64(max(r.Calls, 1))
		code := codeLabel(r.Code)
		m.calls.WithLabelValues(target, mode, code).Add(n)
		if r.Latency != nil && r.Code != CodeDraining {
			m.latency.WithLabelValues(target, mode, code).Observe(r.Latency.AsDuration().Seconds())
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, r := range results {
		id := r.Identity
		if id == nil || !live(r.Address) {
			continue
		}
		seen := m.pods[target]
		if seen == nil {
			seen = map[string]podName{}
			m.pods[target] = seen
		}
		now := podName{id.PodName, id.NodeName}
		if old, ok := seen[r.Address]; ok && old != now {
			// A new pod on a known address (an IP reused after a rollout).
			m.drop(target, r.Address)
		}
		seen[r.Address] = now
		m.podCalls.WithLabelValues(target, mode, now.pod, now.node).Add(float64(max(r.Calls, 1)))
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
		m.drop(target, a)
	}
}

// drop deletes the series of the pod last seen at addr, unless another
// address still reports that pod. m.mu must be held.
func (m *Metrics) drop(target, addr string) {
	seen := m.pods[target]
	old, ok := seen[addr]
	if !ok {
		return
	}
	delete(seen, addr)
	for _, other := range seen {
		if other == old {
			return
		}
	}
	m.podCalls.DeletePartialMatch(prometheus.Labels{"target": target, "pod": old.pod, "node": old.node})
}
