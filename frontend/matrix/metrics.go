package matrix

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"

	knowingnodev1 "github.com/knowingnode/knowingnode/gen/knowingnode/v1"
)

// Metrics of the matrices; a nil *Metrics records nothing.
type Metrics struct {
	matrices *prometheus.CounterVec
	cells    *prometheus.CounterVec
	disagree *prometheus.HistogramVec
}

// NewMetrics registers the matrix metrics with reg.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		matrices: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "knowingnode_matrix_requests_total",
			Help: "Matrices asked of this frontend, by outcome: ok, or refused by the named limit (max-matrix-calls, max-matrices, fanout: this frontend's fan-out limits).",
		}, []string{"outcome"}),
		cells: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "knowingnode_matrix_cells_total",
			Help: "Frontend x backend cells of the matrices this frontend merged, by code (OK when every call of the cell succeeded).",
		}, []string{"code"}),
		disagree: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "knowingnode_discovery_disagreement_seconds",
			Help:    "How long a DNS target and the kubernetes:/// target of the same Service disagreed on the ready endpoints (DNS staleness), observed when they agree again.",
			Buckets: []float64{0.5, 1, 2, 5, 10, 20, 30, 45, 60, 90, 120, 300},
		}, []string{"target", "other"}),
	}
	if err := errors.Join(reg.Register(m.matrices), reg.Register(m.cells), reg.Register(m.disagree)); err != nil {
		return nil, fmt.Errorf("register matrix metrics: %w", err)
	}
	return m, nil
}

func (m *Metrics) refused(limit string) {
	if m == nil {
		return
	}
	m.matrices.WithLabelValues("refused_" + limit).Inc()
}

func (m *Metrics) done(resp *knowingnodev1.MatrixResponse) {
	if m == nil {
		return
	}
	m.matrices.WithLabelValues("ok").Inc()
	for _, p := range resp.GetPaths() {
		for _, c := range p.GetCells() {
			m.cells.WithLabelValues(c.GetCode()).Inc()
		}
	}
}

func (m *Metrics) disagreed(target, other string, seconds float64) {
	if m == nil {
		return
	}
	m.disagree.WithLabelValues(target, other).Observe(seconds)
}
