package load

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// The limits that refuse a load, as the refusal metric labels them.
const (
	limitMaxConcurrent = "max_concurrent" // --load-max-concurrent
	limitShuttingDown  = "shutting_down"
)

// Metrics count loads refused, as fan-out refusals are counted, and the
// reports kept.
type Metrics struct {
	refusals    *prometheus.CounterVec
	reports     prometheus.Gauge
	reportBytes prometheus.Gauge
}

// NewMetrics registers the load metrics with reg.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		refusals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "knowingnode_load_refused_total",
			Help: "LoadService/Run calls refused before any call, by the limit that refused them: max_concurrent (--load-max-concurrent), shutting_down.",
		}, []string{"limit"}),
		reports: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "knowingnode_load_reports",
			Help: "HTML reports of ended loads kept in memory for GET /v1/load/runs/{id}/report (at most --load-reports).",
		}),
		reportBytes: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "knowingnode_load_report_bytes",
			Help: "Bytes of the HTML reports kept in memory (at most 32 MiB).",
		}),
	}
	if err := errors.Join(reg.Register(m.refusals), reg.Register(m.reports), reg.Register(m.reportBytes)); err != nil {
		return nil, err
	}
	for _, l := range []string{limitMaxConcurrent, limitShuttingDown} {
		m.refusals.WithLabelValues(l) // at zero from the start
	}
	return m, nil
}

func (m *Metrics) refused(limit string) {
	if m != nil {
		m.refusals.WithLabelValues(limit).Inc()
	}
}

func (m *Metrics) kept(n, bytes int) {
	if m != nil {
		m.reports.Set(float64(n))
		m.reportBytes.Set(float64(bytes))
	}
}
