package load

import "github.com/prometheus/client_golang/prometheus"

// The limits that refuse a load, as the refusal metric labels them.
const (
	limitMaxConcurrent = "max_concurrent" // --load-max-concurrent
	limitShuttingDown  = "shutting_down"
)

// Metrics count loads refused, as fan-out refusals are counted.
type Metrics struct {
	refusals *prometheus.CounterVec
}

// NewMetrics registers the load metrics with reg.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		refusals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "knowingnode_load_refused_total",
			Help: "LoadService/Run calls refused before any call, by the limit that refused them: max_concurrent (--load-max-concurrent), shutting_down.",
		}, []string{"limit"}),
	}
	if err := reg.Register(m.refusals); err != nil {
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
