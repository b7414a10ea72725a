package fanout

import (
	"github.com/prometheus/client_golang/prometheus"

	knowingnodev1 "github.com/knowingnode/knowingnode/gen/knowingnode/v1"
)

// Metrics count fan-outs and the backend calls within them.
type Metrics struct {
	fanouts  *prometheus.CounterVec
	calls    *prometheus.CounterVec
	podCalls *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	size     *prometheus.HistogramVec
}

// NewMetrics registers the fan-out metrics with reg.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		fanouts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "knowingnode_fanout_requests_total",
			Help: "Fan-outs per target and mode, by result: ok (every call succeeded), partial (some failed), failed (all failed), error (rejected before any call).",
		}, []string{"target", "mode", "result"}),
		calls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "knowingnode_fanout_backend_calls_total",
			Help: "Backend calls made by fan-outs, by gRPC code.",
		}, []string{"target", "mode", "code"}),
		podCalls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "knowingnode_fanout_backend_pod_calls_total",
			Help: "Successful backend calls by the pod and node that answered: the spread of calls over pods.",
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
	}
	for _, c := range []prometheus.Collector{m.fanouts, m.calls, m.podCalls, m.latency, m.size} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func (m *Metrics) rejected(target, mode string) {
	if m != nil {
		m.fanouts.WithLabelValues(target, mode, "error").Inc()
	}
}

func (m *Metrics) observe(target, mode string, backends int, results []*knowingnodev1.BackendResult, sum *knowingnodev1.FanOutSummary) {
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
		m.calls.WithLabelValues(target, mode, r.Code).Add(n)
		if r.Latency != nil {
			m.latency.WithLabelValues(target, mode, r.Code).Observe(r.Latency.AsDuration().Seconds())
		}
		if id := r.Identity; id != nil {
			m.podCalls.WithLabelValues(target, mode, id.PodName, id.NodeName).Add(n)
		}
	}
}
