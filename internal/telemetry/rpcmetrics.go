package telemetry

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	grpcprom "github.com/grpc-ecosystem/go-grpc-middleware/providers/prometheus"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
)

// rpcMetrics are the gRPC metrics of go-grpc-middleware's prometheus
// provider, for unary calls (the only ones instrumented here), on the
// client or the server side: the same names, help, labels and buckets,
// counted the same way, except that each method's series are resolved once,
// on its first call, instead of by their labels (WithLabelValues) four
// times a call: that lookup was about 7% of the frontend's CPU in a fan-out,
// whose every backend call passes here, and a share of every backend call.
// TestRPCMetricsMatchGRPCProm holds them to the provider's.
type rpcMetrics struct {
	started, handled, received, sent *prometheus.CounterVec
	handling                         *prometheus.HistogramVec
	methods                          sync.Map // full method → *methodMetrics
}

type methodMetrics struct {
	labels   []string // grpc_type, grpc_service, grpc_method
	started  prometheus.Counter
	handling prometheus.Observer
	// Resolved on first use: the provider makes no zero series for them.
	received, sent atomic.Pointer[prometheus.Counter]
	handled        [codes.Unauthenticated + 1]atomic.Pointer[prometheus.Counter]
}

func newRPCMetrics(side string) *rpcMetrics {
	h := map[string][5]string{
		"client": {"Total number of RPCs started on the client.",
			"Total number of RPCs completed by the client, regardless of success or failure.",
			"Total number of RPC stream messages received by the client.",
			"Total number of gRPC stream messages sent by the client.",
			"Histogram of response latency (seconds) of the gRPC until it is finished by the application."},
		"server": {"Total number of RPCs started on the server.",
			"Total number of RPCs completed on the server, regardless of success or failure.",
			"Total number of RPC stream messages received on the server.",
			"Total number of gRPC stream messages sent by the server.",
			"Histogram of response latency (seconds) of gRPC that had been application-level handled by the server."},
	}[side]
	labels := []string{"grpc_type", "grpc_service", "grpc_method"}
	counter := func(name, help string, l []string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Name: "grpc_" + side + "_" + name, Help: help}, l)
	}
	return &rpcMetrics{
		started:  counter("started_total", h[0], labels),
		handled:  counter("handled_total", h[1], append(labels, "grpc_code")),
		received: counter("msg_received_total", h[2], labels),
		sent:     counter("msg_sent_total", h[3], labels),
		handling: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "grpc_" + side + "_handling_seconds", Help: h[4], Buckets: prometheus.DefBuckets,
		}, labels),
	}
}

func (m *rpcMetrics) Describe(ch chan<- *prometheus.Desc) {
	for _, c := range m.collectors() {
		c.Describe(ch)
	}
}

func (m *rpcMetrics) Collect(ch chan<- prometheus.Metric) {
	for _, c := range m.collectors() {
		c.Collect(ch)
	}
}

func (m *rpcMetrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{m.started, m.handled, m.received, m.sent, m.handling}
}

func (m *rpcMetrics) forMethod(full string) *methodMetrics {
	if mm, ok := m.methods.Load(full); ok {
		return mm.(*methodMetrics)
	}
	service, method := "unknown", "unknown"
	if s, meth, ok := strings.Cut(strings.TrimPrefix(full, "/"), "/"); ok {
		service, method = s, meth
	}
	mm := &methodMetrics{labels: []string{"unary", service, method}}
	mm.started = m.started.WithLabelValues(mm.labels...)
	mm.handling = m.handling.WithLabelValues(mm.labels...)
	got, _ := m.methods.LoadOrStore(full, mm)
	return got.(*methodMetrics)
}

// lazy returns the child in p, resolving it in vec with lvs the first time.
func lazy(p *atomic.Pointer[prometheus.Counter], vec *prometheus.CounterVec, lvs ...string) prometheus.Counter {
	if c := p.Load(); c != nil {
		return *c
	}
	c := vec.WithLabelValues(lvs...)
	p.CompareAndSwap(nil, &c)
	return c
}

func (m *rpcMetrics) handledFor(mm *methodMetrics, c codes.Code) prometheus.Counter {
	if int(c) >= len(mm.handled) {
		return m.handled.WithLabelValues(mm.labels[0], mm.labels[1], mm.labels[2], c.String())
	}
	if p := mm.handled[c].Load(); p != nil {
		return *p
	}
	return lazy(&mm.handled[c], m.handled, mm.labels[0], mm.labels[1], mm.labels[2], c.String())
}

// done counts the end of a call as the provider's PostCall does.
func (m *rpcMetrics) done(mm *methodMetrics, err error, start time.Time) {
	m.handledFor(mm, grpcprom.FromError(err).Code()).Inc()
	mm.handling.Observe(time.Since(start).Seconds())
}

// unaryClientInterceptor counts as the provider's client interceptor:
// started and sent before the call; received when it succeeded; handled by
// code, and the handling time, after.
func (m *rpcMetrics) unaryClientInterceptor() grpc.UnaryClientInterceptor {
	return func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		start := time.Now()
		mm := m.forMethod(method)
		mm.started.Inc()
		lazy(&mm.sent, m.sent, mm.labels...).Inc()
		err := invoker(ctx, method, req, reply, cc, opts...)
		if err == nil {
			lazy(&mm.received, m.received, mm.labels...).Inc()
		}
		m.done(mm, err, start)
		return err
	}
}

// unaryServerInterceptor counts as the provider's server interceptor:
// started and received before the handler; sent when it succeeded; handled
// by code, and the handling time, after.
func (m *rpcMetrics) unaryServerInterceptor() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		start := time.Now()
		mm := m.forMethod(info.FullMethod)
		mm.started.Inc()
		lazy(&mm.received, m.received, mm.labels...).Inc()
		resp, err := handler(ctx, req)
		if err == nil {
			lazy(&mm.sent, m.sent, mm.labels...).Inc()
		}
		m.done(mm, err, start)
		return resp, err
	}
}

// initialize creates the series of every method of s at zero, as the
// provider's InitializeMetrics does.
func (m *rpcMetrics) initialize(s *grpc.Server) {
	for service, info := range s.GetServiceInfo() {
		for _, mi := range info.Methods {
			typ := "unary"
			switch {
			case mi.IsClientStream && mi.IsServerStream:
				typ = "bidi_stream"
			case mi.IsClientStream:
				typ = "client_stream"
			case mi.IsServerStream:
				typ = "server_stream"
			}
			m.started.WithLabelValues(typ, service, mi.Name)
			m.received.WithLabelValues(typ, service, mi.Name)
			m.sent.WithLabelValues(typ, service, mi.Name)
			m.handling.WithLabelValues(typ, service, mi.Name)
			for c := codes.OK; c <= codes.Unauthenticated; c++ {
				m.handled.WithLabelValues(typ, service, mi.Name, c.String())
			}
		}
	}
}
