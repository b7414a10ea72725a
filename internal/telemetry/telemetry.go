// Package telemetry sets up what both binaries report about themselves:
// Prometheus metrics in a registry of their own, OpenTelemetry tracing (off
// unless the standard OTEL_* environment turns it on), and the admin HTTP
// handler that serves /metrics, /healthz and, when asked, pprof.
package telemetry

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/contrib/exporters/autoexport"
	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.37.0"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
	"google.golang.org/grpc"

	knowingnodev1 "github.com/knowingnode/knowingnode/gen/knowingnode/v1"
)

// Options configure New.
type Options struct {
	Service  string                  // service.name, e.g. knowingnode-backend
	Identity *knowingnodev1.Identity // its pod and node become resource attributes
	Getenv   func(string) string
	// TracerProvider replaces the one New would build from the environment;
	// for tests (an in-memory exporter) and embedding.
	TracerProvider trace.TracerProvider
	// ShutdownTimeout bounds Shutdown's flush of spans (0: 2s), so that an
	// unreachable collector cannot hold a stopping pod past its grace period.
	ShutdownTimeout time.Duration
}

// DefaultShutdownTimeout is Options.ShutdownTimeout when unset.
const DefaultShutdownTimeout = 2 * time.Second

// Telemetry is a process's metrics registry and tracer provider.
type Telemetry struct {
	Registry      *prometheus.Registry
	Tracing       bool // spans are exported
	tp            trace.TracerProvider
	prop          propagation.TextMapPropagator
	serverMetrics *rpcMetrics
	clientMetrics *rpcMetrics
	shutdown      func(context.Context) error
	shutdownIn    time.Duration
}

// TracingEnabled reports whether the standard OpenTelemetry environment asks
// for traces to be exported.
func TracingEnabled(getenv func(string) string) bool {
	switch getenv("OTEL_TRACES_EXPORTER") {
	case "none":
		return false
	case "":
		return getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "" || getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") != ""
	}
	return true
}

// New builds the registry (Go runtime, process and build metrics, gRPC
// server and client metrics) and the tracer provider.
func New(ctx context.Context, o Options) (*Telemetry, error) {
	reg := prometheus.NewRegistry()
	t := &Telemetry{
		Registry:      reg,
		prop:          propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}),
		serverMetrics: newRPCMetrics("server"),
		clientMetrics: newRPCMetrics("client"),
		shutdown:      func(context.Context) error { return nil },
		shutdownIn:    o.ShutdownTimeout,
	}
	if t.shutdownIn <= 0 {
		t.shutdownIn = DefaultShutdownTimeout
	}
	build := o.Identity.GetBuild()
	buildInfo := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "knowingnode_build_info",
		Help: "Build of the running binary; always 1.",
	}, []string{"tier", "version", "revision", "goversion"})
	buildInfo.WithLabelValues(tierName(o.Identity.GetTier()), build.GetVersion(), build.GetRevision(), build.GetGoVersion()).Set(1)
	if err := errors.Join(
		reg.Register(collectors.NewGoCollector()),
		reg.Register(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})),
		reg.Register(buildInfo),
		reg.Register(t.serverMetrics),
		reg.Register(t.clientMetrics),
	); err != nil {
		return nil, fmt.Errorf("register metrics: %w", err)
	}

	switch {
	case o.TracerProvider != nil:
		t.tp, t.Tracing = o.TracerProvider, true
	case TracingEnabled(o.Getenv):
		exp, err := autoexport.NewSpanExporter(ctx)
		if err != nil {
			return nil, fmt.Errorf("tracing: span exporter from OTEL_* environment: %w", err)
		}
		res, err := resource.Merge(resource.Default(), resource.NewSchemaless(resourceAttrs(o)...)) // schemaless: the SDK default carries its own semconv schema URL, which a different one here would conflict with
		if err != nil {
			return nil, fmt.Errorf("tracing: resource: %w", err)
		}
		sdk := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res))
		t.tp, t.Tracing, t.shutdown = sdk, true, sdk.Shutdown
	default:
		t.tp = noop.NewTracerProvider()
	}
	return t, nil
}

func resourceAttrs(o Options) []attribute.KeyValue {
	id := o.Identity
	return []attribute.KeyValue{
		semconv.ServiceName(o.Service),
		semconv.ServiceVersion(id.GetBuild().GetVersion()),
		semconv.K8SPodName(id.GetPodName()),
		semconv.K8SNamespaceName(id.GetPodNamespace()),
		semconv.K8SNodeName(id.GetNodeName()),
	}
}

func tierName(t knowingnodev1.Tier) string {
	switch t {
	case knowingnodev1.Tier_TIER_BACKEND:
		return "backend"
	case knowingnodev1.Tier_TIER_FRONTEND:
		return "frontend"
	}
	return "unknown"
}

// Tracer returns a tracer of the process's provider.
func (t *Telemetry) Tracer(name string) trace.Tracer { return t.tp.Tracer(name) }

// TracerProvider returns the process's provider; a no-op one when tracing is off.
func (t *Telemetry) TracerProvider() trace.TracerProvider { return t.tp }

// Propagator is the W3C trace context and baggage propagator.
func (t *Telemetry) Propagator() propagation.TextMapPropagator { return t.prop }

// ServerOptions instrument a gRPC server: metrics always, traces when on.
func (t *Telemetry) ServerOptions() []grpc.ServerOption {
	opts := []grpc.ServerOption{grpc.ChainUnaryInterceptor(t.serverMetrics.unaryServerInterceptor())}
	if t.Tracing {
		opts = append(opts, grpc.StatsHandler(otelgrpc.NewServerHandler(
			otelgrpc.WithTracerProvider(t.tp), otelgrpc.WithPropagators(t.prop))))
	}
	return opts
}

// DialOptions instrument a gRPC client: metrics always, traces when on.
func (t *Telemetry) DialOptions() []grpc.DialOption {
	opts := []grpc.DialOption{grpc.WithChainUnaryInterceptor(t.clientMetrics.unaryClientInterceptor())}
	if t.Tracing {
		opts = append(opts, grpc.WithStatsHandler(otelgrpc.NewClientHandler(
			otelgrpc.WithTracerProvider(t.tp), otelgrpc.WithPropagators(t.prop))))
	}
	return opts
}

// InitializeServerMetrics pre-registers every method of s at zero, so the
// series exist before the first call.
func (t *Telemetry) InitializeServerMetrics(s *grpc.Server) { t.serverMetrics.initialize(s) }

// MetricsHandler serves the registry in the Prometheus format.
func (t *Telemetry) MetricsHandler() http.Handler {
	return promhttp.HandlerFor(t.Registry, promhttp.HandlerOpts{Registry: t.Registry})
}

// AdminHandler serves /metrics and /healthz and, only when withPprof, the
// net/http/pprof endpoints under /debug/pprof/.
func (t *Telemetry) AdminHandler(ready func() bool, withPprof bool) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", t.MetricsHandler())
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		if ready != nil && !ready() {
			http.Error(w, "shutting down", http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte("ok\n"))
	})
	if withPprof {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	return mux
}

// Shutdown flushes spans, giving up after the shutdown timeout or when ctx
// ends, whichever comes first.
func (t *Telemetry) Shutdown(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, t.shutdownIn)
	defer cancel()
	if err := t.shutdown(ctx); err != nil {
		return fmt.Errorf("telemetry shutdown (limit %v): %w", t.shutdownIn, err)
	}
	return nil
}
