// Package gateway is the frontend's HTTP face: the REST API of grpc-gateway,
// registered in-process (no network hop back to our own gRPC port), the
// OpenAPI document, probes, and the browser page.
package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	knowingnodev1 "github.com/knowingnode/knowingnode/gen/knowingnode/v1"
	"github.com/knowingnode/knowingnode/gen/openapi"
)

// Options hold what the HTTP face serves.
type Options struct {
	Identity knowingnodev1.IdentityServiceServer
	FanOut   knowingnodev1.FanOutServiceServer
	Load     knowingnodev1.LoadServiceClient // POST /v1/load, streamed; nil for none
	Ready    func() bool                     // readiness of the process, for /readyz
	Page     http.Handler                    // the browser page at /; nil for none
	Metrics  http.Handler                    // served at /metrics; nil for none
	Logger   *slog.Logger                    // logs panics in streams; nil: slog.Default

	// AllowCrossSite lets browsers on other sites reach the API (see
	// crossOrigin): the frontend's --allow-cross-site.
	AllowCrossSite bool

	// Registerer receives the HTTP request metrics; nil for none.
	Registerer prometheus.Registerer
	// TracerProvider, when set, traces every request and takes the trace
	// context from its headers, so a fan-out joins the caller's trace.
	TracerProvider trace.TracerProvider
	Propagator     propagation.TextMapPropagator

	// Fixed are replies that never change once served (the very pointers
	// the services return, such as identity.Server's Response): encoded to
	// JSON once, not per request. They must not be modified afterwards.
	Fixed []proto.Message

	// Matrix serves /v1/matrix, /v1/matrix:stream and /v1/disagreements;
	// nil for none.
	Matrix knowingnodev1.MatrixServiceServer

	// LoadReport serves GET /v1/load/runs/{run_id}/report (LoadReportPath),
	// the HTML report of a load run; nil for none.
	LoadReport LoadReport
}

// maxQuery bounds the query string; every parameter is short.
const maxQuery = 4 << 10

// New returns the HTTP handler.
func New(ctx context.Context, o Options) (http.Handler, error) {
	marshaler, err := newFixedMarshaler(&runtime.JSONPb{
		MarshalOptions:   protojson.MarshalOptions{},
		UnmarshalOptions: protojson.UnmarshalOptions{DiscardUnknown: false},
	}, o.Fixed)
	if err != nil {
		return nil, err
	}
	// One error shape for every answer (errors.go), unary and streams.
	errOpts := []runtime.ServeMuxOption{runtime.WithErrorHandler(handleError), runtime.WithStreamErrorHandler(streamError)}
	gw := runtime.NewServeMux(append(errOpts, runtime.WithMarshalerOption(runtime.MIMEWildcard, marshaler))...)
	if err := knowingnodev1.RegisterIdentityServiceHandlerServer(ctx, gw, o.Identity); err != nil {
		return nil, fmt.Errorf("register identity gateway: %w", err)
	}
	if err := knowingnodev1.RegisterFanOutServiceHandlerServer(ctx, gw, o.FanOut); err != nil {
		return nil, fmt.Errorf("register fan-out gateway: %w", err)
	}
	// The server streams, through an in-process client (see streams).
	streamer := runtime.NewServeMux(append(errOpts, runtime.WithMarshalerOption(runtime.MIMEWildcard, ndjson{marshaler}))...)
	if err := knowingnodev1.RegisterFanOutServiceHandlerClient(ctx, streamer, fanOutStreams{o.FanOut, o.Logger}); err != nil {
		return nil, fmt.Errorf("register fan-out stream gateway: %w", err)
	}
	if err := registerMatrix(ctx, gw, streamer, o.Matrix, o.Logger); err != nil {
		return nil, err
	}
	if o.Load != nil {
		if err := knowingnodev1.RegisterLoadServiceHandlerClient(ctx, streamer, o.Load); err != nil {
			return nil, fmt.Errorf("register load gateway: %w", err)
		}
	}

	instrument, err := newInstrumenter(o.Registerer)
	if err != nil {
		return nil, err
	}
	routes, err := routesFromOpenAPI(openapi.JSON)
	if err != nil {
		return nil, err
	}
	cross := crossOrigin{allow: o.AllowCrossSite}
	mux := http.NewServeMux()
	mux.Handle("/v1/", instrument("api", &api{routes: routes, next: streams(routes, gw, streamer), cross: cross}))
	if o.LoadReport != nil {
		mux.Handle(LoadReportPath, instrument("api", &api{routes: []route{loadReportRoute}, next: serveLoadReport(o.LoadReport), cross: cross}))
	}
	// The walkthrough's /hostz: a fan-out over the default target. It takes
	// no parameters, and is held to the same conventions as /v1/.
	hostz := []route{{path: "/hostz", methods: []string{http.MethodGet}, allow: allowHeader([]string{http.MethodGet})}}
	mux.Handle("/hostz", instrument("hostz", &api{routes: hostz, cross: cross, next: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r2 := r.Clone(r.Context())
		r2.URL.Path = "/v1/fanout"
		r2.URL.RawQuery = ""
		gw.ServeHTTP(w, r2)
	})}))
	if o.Metrics != nil {
		mux.Handle("GET /metrics", o.Metrics)
	}
	mux.HandleFunc("GET /openapi.json", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("Cache-Control", "no-store")
		w.Write(openapi.JSON)
	})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if o.Ready != nil && !o.Ready() {
			http.Error(w, "not ready: shutting down", http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte("ok\n"))
	})
	if o.Page != nil {
		mux.Handle("/", instrument("page", o.Page))
	}
	// The API's headers also on what the mux answers by itself (the redirect
	// of an unclean path such as /v1/., a 404), not only on the routes.
	var h http.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/v1/") || r.URL.Path == "/hostz" {
			w.Header().Set("X-Content-Type-Options", "nosniff")
			w.Header().Set("Cache-Control", "no-store")
		}
		mux.ServeHTTP(w, r)
	})
	h = cross.protect(h)
	if o.TracerProvider != nil {
		return otelhttp.NewHandler(h, "frontend.http",
			otelhttp.WithTracerProvider(o.TracerProvider),
			otelhttp.WithPropagators(o.Propagator),
			otelhttp.WithSpanNameFormatter(func(_ string, r *http.Request) string { return r.Method + " " + r.URL.Path }),
		), nil
	}
	return h, nil
}

// newInstrumenter returns a wrapper counting requests and timing them by
// handler, status code and method.
func newInstrumenter(reg prometheus.Registerer) (func(string, http.Handler) http.Handler, error) {
	if reg == nil {
		return func(_ string, h http.Handler) http.Handler { return h }, nil
	}
	reqs := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "knowingnode_http_requests_total",
		Help: "HTTP requests to the frontend, by handler, status code and method.",
	}, []string{"handler", "code", "method"})
	dur := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "knowingnode_http_request_duration_seconds",
		Help:    "Latency of HTTP requests to the frontend.",
		Buckets: prometheus.DefBuckets,
	}, []string{"handler", "code", "method"})
	if err := errors.Join(reg.Register(reqs), reg.Register(dur)); err != nil {
		return nil, fmt.Errorf("register HTTP metrics: %w", err)
	}
	return func(name string, h http.Handler) http.Handler {
		l := prometheus.Labels{"handler": name}
		return promhttp.InstrumentHandlerDuration(dur.MustCurryWith(l),
			promhttp.InstrumentHandlerCounter(reqs.MustCurryWith(l), h))
	}, nil
}
