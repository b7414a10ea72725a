// Package livemetrics serves a running load's own Prometheus metrics: the
// rate it sends at, its calls by code and by answering pod, and a latency
// histogram (native, with classic buckets beside it), so that a long load
// shows in Grafana beside the tiers it loads.
package livemetrics

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/knowingnode/knowingnode/internal/load/engine"
)

// MaxPods bounds the pod label's values; pods past it count as Other, so a
// target answering with ever-new names cannot grow the series without bound.
const MaxPods = 64

// Other is the label value of pods past MaxPods and of unknown codes.
const Other = "other"

// codes are the label values a code may take: gRPC's names.
var codes = map[string]bool{"OK": true, "CANCELLED": true, "UNKNOWN": true, "INVALID_ARGUMENT": true,
	"DEADLINE_EXCEEDED": true, "NOT_FOUND": true, "ALREADY_EXISTS": true, "PERMISSION_DENIED": true,
	"RESOURCE_EXHAUSTED": true, "FAILED_PRECONDITION": true, "ABORTED": true, "OUT_OF_RANGE": true,
	"UNIMPLEMENTED": true, "INTERNAL": true, "UNAVAILABLE": true, "DATA_LOSS": true, "UNAUTHENTICATED": true}

// Metrics are one load's metrics, in a registry of their own.
type Metrics struct {
	reg       *prometheus.Registry
	sent      prometheus.Counter
	late      prometheus.Counter
	dropped   prometheus.Counter
	requested prometheus.Gauge
	rate      prometheus.Gauge
	calls     *prometheus.CounterVec
	latency   prometheus.Histogram

	mu   sync.Mutex
	pods map[string]bool
}

// New returns the metrics of a load asked to send requested calls/s (0:
// closed loop).
func New(requested float64) *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry(), pods: map[string]bool{}}
	f := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Namespace: "knowingnode", Subsystem: "load", Name: name, Help: help})
	}
	m.sent = f("sent_total", "Calls sent in the measured run.")
	m.late = f("late_total", "Calls sent late: every worker was busy when they were due.")
	m.dropped = f("dropped_total", "Calls never sent: the pacer fell behind or the backlog was full.")
	m.requested = prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "knowingnode", Subsystem: "load", Name: "requested_rate",
		Help: "Calls per second the load was asked to send (0: closed loop)."})
	m.rate = prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "knowingnode", Subsystem: "load", Name: "window_rate",
		Help: "Calls per second sent in the last closed window."})
	m.calls = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "knowingnode", Subsystem: "load", Name: "calls_total",
		Help: fmt.Sprintf("Completed calls by gRPC code and by the pod that answered (\"\" for a failed call; at most %d pods, then %q).", MaxPods, Other)},
		[]string{"code", "pod"})
	m.latency = prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: "knowingnode", Subsystem: "load", Name: "call_duration_seconds",
		Help: "Time from sending each completed call, ok or failed, to its end. Unlike the report's quantiles, it leaves out " +
			"time spent waiting for a free worker (see late_total).",
		Buckets:                         []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		NativeHistogramBucketFactor:     1.1,
		NativeHistogramMaxBucketNumber:  160,
		NativeHistogramMinResetDuration: time.Hour,
	})
	m.requested.Set(requested)
	m.reg.MustRegister(m.sent, m.late, m.dropped, m.requested, m.rate, m.calls, m.latency)
	return m
}

// Registry is where the metrics are registered.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Call counts a completed call: its time from send to end, its code's name
// and the pod that answered ("" when it failed).
func (m *Metrics) Call(d time.Duration, code, pod string) {
	if !codes[code] {
		code = Other
	}
	if pod != "" {
		m.mu.Lock()
		if !m.pods[pod] {
			if len(m.pods) < MaxPods {
				m.pods[pod] = true
			} else {
				pod = Other
			}
		}
		m.mu.Unlock()
	}
	m.calls.WithLabelValues(code, pod).Inc()
	m.latency.Observe(d.Seconds())
}

// Window adds a closed window's sent, late and dropped calls and its rate.
func (m *Metrics) Window(w *engine.Stats) {
	m.sent.Add(float64(w.Sent))
	m.late.Add(float64(w.Late))
	m.dropped.Add(float64(w.Dropped))
	m.rate.Set(w.Rate)
}

// Handler serves the metrics, in the Prometheus protobuf format when asked
// (native histograms need it), else as text.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{EnableOpenMetrics: true})
}

// Server serves the metrics on an address until Close.
type Server struct {
	srv  *http.Server
	lis  net.Listener
	done chan error
}

// Serve listens on addr and serves m's /metrics.
func Serve(ctx context.Context, addr string, m *Metrics) (*Server, error) {
	lis, err := (&net.ListenConfig{}).Listen(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("--metrics-addr %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", m.Handler())
	s := &Server{srv: &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}, lis: lis, done: make(chan error, 1)}
	go func() { s.done <- s.srv.Serve(lis) }()
	return s, nil
}

// Addr is the address it listens on.
func (s *Server) Addr() string { return s.lis.Addr().String() }

// Close stops serving and waits for the server to end.
func (s *Server) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := s.srv.Shutdown(ctx)
	if serr := <-s.done; !errors.Is(serr, http.ErrServerClosed) {
		err = errors.Join(err, serr)
	}
	return err
}
