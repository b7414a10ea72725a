// Package gateway is the frontend's HTTP face: the REST API of grpc-gateway,
// registered in-process (no network hop back to our own gRPC port), the
// OpenAPI document, probes, and the browser page.
package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/protobuf/encoding/protojson"

	knowingnodev1 "github.com/knowingnode/knowingnode/gen/knowingnode/v1"
	"github.com/knowingnode/knowingnode/gen/openapi"
)

// Options hold what the HTTP face serves.
type Options struct {
	Identity knowingnodev1.IdentityServiceServer
	FanOut   knowingnodev1.FanOutServiceServer
	Ready    func() bool  // readiness of the process, for /readyz
	Page     http.Handler // the browser page at /; nil for none
}

// maxQuery bounds the query string; every parameter is short.
const maxQuery = 4 << 10

// New returns the HTTP handler.
func New(ctx context.Context, o Options) (http.Handler, error) {
	gw := runtime.NewServeMux(runtime.WithMarshalerOption(runtime.MIMEWildcard, &runtime.JSONPb{
		MarshalOptions:   protojson.MarshalOptions{},
		UnmarshalOptions: protojson.UnmarshalOptions{DiscardUnknown: false},
	}))
	if err := knowingnodev1.RegisterIdentityServiceHandlerServer(ctx, gw, o.Identity); err != nil {
		return nil, fmt.Errorf("register identity gateway: %w", err)
	}
	if err := knowingnodev1.RegisterFanOutServiceHandlerServer(ctx, gw, o.FanOut); err != nil {
		return nil, fmt.Errorf("register fan-out gateway: %w", err)
	}

	mux := http.NewServeMux()
	mux.Handle("/v1/", limitQuery(modeAlias(gw)))
	// The walkthrough's /hostz: a fan-out over the default target.
	mux.Handle("GET /hostz", limitQuery(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r2 := r.Clone(r.Context())
		r2.URL.Path = "/v1/fanout"
		r2.URL.RawQuery = ""
		gw.ServeHTTP(w, r2)
	})))
	mux.HandleFunc("GET /openapi.json", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Content-Type-Options", "nosniff")
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
		mux.Handle("/", o.Page)
	}
	return mux, nil
}

// modeAlias lets users write mode=EACH or mode=balanced for the enum's full
// name FAN_OUT_MODE_EACH, which is what the gateway parses.
func modeAlias(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.Contains(r.URL.RawQuery, "mode=") {
			q := r.URL.Query()
			m := strings.ToUpper(q.Get("mode"))
			switch strings.TrimPrefix(m, "FAN_OUT_MODE_") {
			case "", "EACH", "BALANCED", "UNSPECIFIED":
			default:
				writeError(w, http.StatusBadRequest, 3, fmt.Sprintf("mode %q is not a fan-out mode: want EACH or BALANCED", q.Get("mode")))
				return
			}
			if m != "" && !strings.HasPrefix(m, "FAN_OUT_MODE_") {
				q.Set("mode", "FAN_OUT_MODE_"+m)
				r.URL.RawQuery = q.Encode()
			}
		}
		next.ServeHTTP(w, r)
	})
}

func limitQuery(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if len(r.URL.RawQuery) > maxQuery {
			writeError(w, http.StatusRequestURITooLong, 3, fmt.Sprintf("query string of %d bytes exceeds the limit of %d", len(r.URL.RawQuery), maxQuery))
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
		next.ServeHTTP(w, r)
	})
}

// writeError answers in the gateway's error shape, for errors found before a
// request reaches it.
func writeError(w http.ResponseWriter, httpStatus int, grpcCode int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(httpStatus)
	b, _ := json.Marshal(struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	}{grpcCode, msg})
	w.Write(append(b, '\n'))
}
