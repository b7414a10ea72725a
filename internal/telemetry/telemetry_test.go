package telemetry

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	knowingnodev1 "github.com/knowingnode/knowingnode/gen/knowingnode/v1"
)

func TestTracingEnabled(t *testing.T) {
	for _, c := range []struct {
		env  map[string]string
		want bool
	}{
		{nil, false},
		{map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4317"}, true},
		{map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:4318/v1/traces"}, true},
		{map[string]string{"OTEL_TRACES_EXPORTER": "console"}, true},
		{map[string]string{"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4317"}, false},
	} {
		if got := TracingEnabled(func(k string) string { return c.env[k] }); got != c.want {
			t.Errorf("%v: %v, want %v", c.env, got, c.want)
		}
	}
}

func TestAdminHandler(t *testing.T) {
	tel, err := New(t.Context(), Options{
		Service:  "test",
		Identity: &knowingnodev1.Identity{Tier: knowingnodev1.Tier_TIER_BACKEND, Build: &knowingnodev1.BuildInfo{Version: "v9"}},
		Getenv:   func(string) string { return "" },
	})
	if err != nil {
		t.Fatal(err)
	}
	if tel.Tracing {
		t.Error("tracing on with no OTEL_* environment")
	}
	get := func(h http.Handler, path string) *httptest.ResponseRecorder {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		return rec
	}
	ready := true
	plain := tel.AdminHandler(func() bool { return ready }, false)
	if rec := get(plain, "/metrics"); rec.Code != 200 || !strings.Contains(rec.Body.String(), `knowingnode_build_info{goversion="",revision="",tier="backend",version="v9"} 1`) {
		t.Errorf("/metrics: %d\n%s", rec.Code, rec.Body)
	}
	if rec := get(plain, "/debug/pprof/"); rec.Code != 404 {
		t.Errorf("pprof without the flag: %d, want 404", rec.Code)
	}
	if rec := get(tel.AdminHandler(nil, true), "/debug/pprof/"); rec.Code != 200 {
		t.Errorf("pprof with the flag: %d, want 200", rec.Code)
	}
	ready = false
	if rec := get(plain, "/healthz"); rec.Code != 503 {
		t.Errorf("/healthz while shutting down: %d, want 503", rec.Code)
	}
}

// An OTLP collector that accepts connections and never answers must not
// hold a stopping process: Shutdown gives up at its timeout.
func TestShutdownIsBounded(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var conns []net.Conn
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := lis.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c) // held open, never read or answered
		}
	}()
	t.Cleanup(func() {
		lis.Close()
		<-done
		for _, c := range conns {
			c.Close()
		}
	})
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://"+lis.Addr().String())
	t.Setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
	tel, err := New(t.Context(), Options{
		Service: "test", Identity: &knowingnodev1.Identity{}, Getenv: os.Getenv,
		ShutdownTimeout: 500 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	if !tel.Tracing {
		t.Fatal("tracing off with OTEL_EXPORTER_OTLP_ENDPOINT set")
	}
	_, span := tel.Tracer("test").Start(t.Context(), "span")
	span.End()
	start := time.Now()
	err = tel.Shutdown(context.Background())
	took := time.Since(start)
	t.Logf("Shutdown against a silent collector: %v after %v", err, took)
	// The exporter's own timeout is 10s, with retries for a minute.
	if took > 5*time.Second {
		t.Errorf("Shutdown took %v; want it bounded by its 500ms timeout", took)
	}
	if err == nil || !strings.Contains(err.Error(), "limit 500ms") {
		t.Errorf("Shutdown: %v; want an error naming the limit", err)
	}
}
