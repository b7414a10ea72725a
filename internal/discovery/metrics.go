package discovery

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Collector exports the targets' discovery state, read at scrape time so
// nothing is counted twice.
type Collector struct {
	targets   []*Target
	endpoints *prometheus.Desc
	refreshes *prometheus.Desc
	errors    *prometheus.Desc
	sinceGood *prometheus.Desc
}

// NewCollector returns a Collector over targets.
func NewCollector(targets ...*Target) *Collector {
	l := []string{"target", "mode"}
	return &Collector{
		targets:   targets,
		endpoints: prometheus.NewDesc("knowingnode_discovery_endpoints", "Endpoints currently discovered per target.", l, nil),
		refreshes: prometheus.NewDesc("knowingnode_discovery_refreshes_total", "Discovery refreshes per target (DNS lookups, or reads of the watched EndpointSlices).", l, nil),
		errors:    prometheus.NewDesc("knowingnode_discovery_refresh_errors_total", "Failed refreshes per target: the last good endpoints were kept. An authoritative empty answer (NXDOMAIN, no EndpointSlices) is a success with 0 endpoints, not an error.", l, nil),
		sinceGood: prometheus.NewDesc("knowingnode_discovery_seconds_since_success", "Seconds since the last successful refresh (an empty authoritative answer is one); -1 before the first.", l, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.endpoints
	ch <- c.refreshes
	ch <- c.errors
	ch <- c.sinceGood
}

// Collect implements prometheus.Collector.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	for _, t := range c.targets {
		s := t.State()
		lv := []string{s.Spec.Name, string(s.Spec.QType)}
		since := -1.0
		if !s.LastSuccess.IsZero() {
			since = time.Since(s.LastSuccess).Seconds()
		}
		ch <- prometheus.MustNewConstMetric(c.endpoints, prometheus.GaugeValue, float64(len(s.Endpoints)), lv...)
		ch <- prometheus.MustNewConstMetric(c.refreshes, prometheus.CounterValue, float64(s.Refreshes), lv...)
		ch <- prometheus.MustNewConstMetric(c.errors, prometheus.CounterValue, float64(s.RefreshErrors), lv...)
		ch <- prometheus.MustNewConstMetric(c.sinceGood, prometheus.GaugeValue, since, lv...)
	}
}
