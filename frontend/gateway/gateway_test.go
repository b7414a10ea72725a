package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/knowingnode/knowingnode/frontend/web"
	knowingnodev1 "github.com/knowingnode/knowingnode/gen/knowingnode/v1"
)

// recordingFanOut remembers the request the gateway decoded.
type recordingFanOut struct {
	knowingnodev1.UnimplementedFanOutServiceServer
	last *knowingnodev1.FanOutRequest
}

func (r *recordingFanOut) FanOut(_ context.Context, req *knowingnodev1.FanOutRequest) (*knowingnodev1.FanOutResponse, error) {
	r.last = req
	return &knowingnodev1.FanOutResponse{Target: req.Target, Mode: req.Mode}, nil
}

func (r *recordingFanOut) ListTargets(context.Context, *knowingnodev1.ListTargetsRequest) (*knowingnodev1.ListTargetsResponse, error) {
	return &knowingnodev1.ListTargetsResponse{}, nil
}

type fixedIdentity struct {
	knowingnodev1.UnimplementedIdentityServiceServer
}

func (fixedIdentity) GetIdentity(context.Context, *knowingnodev1.GetIdentityRequest) (*knowingnodev1.GetIdentityResponse, error) {
	return &knowingnodev1.GetIdentityResponse{Identity: &knowingnodev1.Identity{PodName: "frontend-0"}}, nil
}

func TestGateway(t *testing.T) {
	fo := &recordingFanOut{}
	var ready atomic.Bool
	ready.Store(true)
	h, err := New(t.Context(), Options{Identity: fixedIdentity{}, FanOut: fo, Ready: ready.Load, Registerer: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	get := func(url string) *httptest.ResponseRecorder {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, url, nil))
		return rec
	}

	for _, c := range []struct {
		query string
		want  knowingnodev1.FanOutMode
	}{
		{"mode=EACH", knowingnodev1.FanOutMode_FAN_OUT_MODE_EACH},
		{"mode=balanced&count=7", knowingnodev1.FanOutMode_FAN_OUT_MODE_BALANCED},
		{"mode=FAN_OUT_MODE_BALANCED", knowingnodev1.FanOutMode_FAN_OUT_MODE_BALANCED},
		{"", knowingnodev1.FanOutMode_FAN_OUT_MODE_UNSPECIFIED},
	} {
		if rec := get("/v1/fanout?target=x&timeout=1.5s&" + c.query); rec.Code != 200 {
			t.Fatalf("%s: %d %s", c.query, rec.Code, rec.Body)
		}
		if fo.last.Mode != c.want || fo.last.Target != "x" || fo.last.Timeout.AsDuration().Seconds() != 1.5 {
			t.Errorf("%s: decoded %v", c.query, fo.last)
		}
	}

	if rec := get("/v1/identity"); rec.Code != 200 || !strings.Contains(rec.Body.String(), `"podName":"frontend-0"`) {
		t.Errorf("/v1/identity: %d %s", rec.Code, rec.Body)
	}
	rec := get("/v1/fanout?target=" + strings.Repeat("x", maxQuery))
	if code, msg := errorJSON(t, rec); rec.Code != http.StatusRequestURITooLong || code != 3 || !strings.Contains(msg, "exceeds the limit") {
		t.Errorf("long query: %d %s", rec.Code, rec.Body)
	}
	if rec := get("/v1/fanout?mode=up"); rec.Code != 400 || !strings.Contains(rec.Body.String(), "want EACH or BALANCED") {
		t.Errorf("bad mode: %d %s", rec.Code, rec.Body)
	}
	if rec := get("/readyz"); rec.Code != 200 {
		t.Errorf("/readyz while serving: %d", rec.Code)
	}
	ready.Store(false)
	if rec := get("/readyz"); rec.Code != http.StatusServiceUnavailable {
		t.Errorf("/readyz while shutting down: %d, want 503", rec.Code)
	}
	if rec := get("/healthz"); rec.Code != 200 {
		t.Errorf("/healthz: %d", rec.Code)
	}
	if rec := get("/nope"); rec.Code != 404 {
		t.Errorf("no page configured: / answered %d", rec.Code)
	}
}

// newTestHandler is the gateway over the recording fan-out and a fixed
// identity, with the page's file server at /.
func newTestHandler(t *testing.T, page http.Handler) (http.Handler, *recordingFanOut) {
	t.Helper()
	fo := &recordingFanOut{}
	h, err := New(t.Context(), Options{Identity: fixedIdentity{}, FanOut: fo, Page: page, Registerer: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	return h, fo
}

func serve(h http.Handler, method, target string) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodGet, "/", nil)
	req.Method = method
	// Set the raw request line as a client would send it: httptest.NewRequest
	// rejects some of the junk under test.
	u, err := url.ParseRequestURI(target)
	if err != nil {
		panic(err)
	}
	req.URL, req.RequestURI = u, target
	h.ServeHTTP(rec, req)
	return rec
}

// errorJSON decodes the one error shape, {"error": {"code", "message"}},
// and fails on any other.
func errorJSON(t *testing.T, rec *httptest.ResponseRecorder) (code int, message string) {
	t.Helper()
	return decodeError(t, rec.Body.Bytes())
}

func decodeError(t *testing.T, body []byte) (code int, message string) {
	t.Helper()
	var e struct {
		Error *struct {
			Code    *int
			Message string
		}
	}
	d := json.NewDecoder(bytes.NewReader(body))
	d.DisallowUnknownFields()
	if err := d.Decode(&e); err != nil || e.Error == nil || e.Error.Message == "" {
		t.Fatalf("error body %q is not {\"error\": {\"code\", \"message\"}}: %v", body, err)
	}
	if e.Error.Code == nil { // protojson leaves out code 0; no error has it
		t.Fatalf("error body %q has no code", body)
	}
	return *e.Error.Code, e.Error.Message
}

func TestRESTMethods(t *testing.T) {
	h, _ := newTestHandler(t, http.NotFoundHandler())
	for _, path := range []string{"/v1/fanout", "/v1/identity", "/v1/targets", "/hostz"} {
		for _, m := range []string{http.MethodPost, http.MethodPut, http.MethodDelete, http.MethodPatch, "BREW"} {
			rec := serve(h, m, path)
			if rec.Code != http.StatusMethodNotAllowed || rec.Header().Get("Allow") != "GET, HEAD, OPTIONS" {
				t.Errorf("%s %s: %d, Allow %q; want 405 with Allow: GET, HEAD, OPTIONS", m, path, rec.Code, rec.Header().Get("Allow"))
			}
			if _, msg := errorJSON(t, rec); !strings.Contains(msg, m) || !strings.Contains(msg, "GET, HEAD, OPTIONS") {
				t.Errorf("%s %s: message %q does not name the method and the allowed ones", m, path, msg)
			}
		}
		get, head := serve(h, http.MethodGet, path), serve(h, http.MethodHead, path)
		if get.Code != 200 || head.Code != 200 || head.Header().Get("Content-Type") != get.Header().Get("Content-Type") {
			t.Errorf("%s: GET %d %q, HEAD %d %q; want HEAD to answer as GET", path, get.Code, get.Header().Get("Content-Type"), head.Code, head.Header().Get("Content-Type"))
		}
		opt := serve(h, http.MethodOptions, path)
		if opt.Code != http.StatusNoContent || opt.Header().Get("Allow") != "GET, HEAD, OPTIONS" {
			t.Errorf("OPTIONS %s: %d, Allow %q; want 204 with Allow", path, opt.Code, opt.Header().Get("Allow"))
		}
	}
	// An unknown API path is a 404 whatever the method.
	for _, m := range []string{http.MethodGet, http.MethodPost, http.MethodOptions} {
		if rec := serve(h, m, "/v1/nope"); rec.Code != http.StatusNotFound {
			t.Errorf("%s /v1/nope: %d, want 404", m, rec.Code)
		}
	}
}

func TestRESTQueries(t *testing.T) {
	h, fo := newTestHandler(t, http.NotFoundHandler())
	for _, c := range []struct {
		target string
		status int
		naming string // what the error message must contain
	}{
		// A pair the parser cannot read is an error, never dropped: the
		// request would be answered for the default target.
		{"/v1/fanout?mode=EACH&target=srv;x", 400, `"target"`},
		{"/v1/fanout?target=srv;x", 400, `"target"`},
		{"/v1/fanout?target=%zz", 400, `"target"`},
		{"/v1/fanout?mode=EACH&ta%zzrget=x", 400, "ta%zzrget"},
		{"/v1/fanout?target=%FF", 400, `"target"`},
		{"/v1/fanout?%FF=1", 400, "UTF-8"},
		// Duplicates: every parameter the same way.
		{"/v1/fanout?mode=EACH&mode=BALANCED", 400, `"mode" given 2 times`},
		{"/v1/fanout?target=a&target=b", 400, `"target" given 2 times`},
		{"/v1/fanout?count=1&count=2", 400, `"count" given 2 times`},
		// Unknown parameters are refused everywhere, naming what the route takes.
		{"/v1/fanout?targt=x", 400, `"targt"`},
		{"/v1/identity?mode=junk", 400, `unknown parameter "mode": /v1/identity takes none`},
		{"/v1/targets?x=1", 400, `"x"`},
		{"/hostz?target=x", 400, `"target"`},
		{"/v1/fanout?mode=up", 400, "want EACH or BALANCED"},
	} {
		rec := serve(h, http.MethodGet, c.target)
		if rec.Code != c.status {
			t.Errorf("%s: %d %s, want %d", c.target, rec.Code, rec.Body, c.status)
			continue
		}
		if code, msg := errorJSON(t, rec); code != 3 || !strings.Contains(msg, c.naming) {
			t.Errorf("%s: code %d message %q; want INVALID_ARGUMENT naming %s", c.target, code, msg, c.naming)
		}
	}
	// What passes reaches the gateway whole.
	if rec := serve(h, http.MethodGet, "/v1/fanout?mode=each&target=srv&count=3&timeout=2s"); rec.Code != 200 ||
		fo.last.Target != "srv" || fo.last.Count != 3 || fo.last.Mode != knowingnodev1.FanOutMode_FAN_OUT_MODE_EACH {
		t.Errorf("good query: %d %s, decoded %v", rec.Code, rec.Body, fo.last)
	}
}

func TestRESTHeadersAndPaths(t *testing.T) {
	// The page's real file server at /: bad paths there must not be 500s.
	h, _ := newTestHandler(t, web.Handler())
	for _, path := range []string{"/v1/fanout", "/v1/identity", "/v1/targets", "/hostz", "/v1/nope", "/v1/fanout?mode=up", "/openapi.json"} {
		rec := serve(h, http.MethodGet, path)
		if rec.Header().Get("X-Content-Type-Options") != "nosniff" || rec.Header().Get("Cache-Control") != "no-store" {
			t.Errorf("%s: %d with X-Content-Type-Options %q, Cache-Control %q; want nosniff, no-store", path, rec.Code,
				rec.Header().Get("X-Content-Type-Options"), rec.Header().Get("Cache-Control"))
		}
	}
	for _, path := range []string{"/%FF", "/%C0%AF", "/v1/%FF", "/v1/fanout%C0%AF"} {
		rec := serve(h, http.MethodGet, path)
		if rec.Code != 400 || !strings.Contains(rec.Body.String(), "UTF-8") {
			t.Errorf("%s: %d %q, want 400 naming UTF-8", path, rec.Code, rec.Body)
		}
	}
}
