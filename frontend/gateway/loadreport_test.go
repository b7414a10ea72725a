package gateway

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

const (
	keptRun    = "0123456789abcdef0123456789abcdef"
	runningRun = "fedcba9876543210fedcba9876543210"
	reportHTML = "<!doctype html><title>load</title>"
)

// fakeReports keeps one report, and has one run still running.
func fakeReports(_ context.Context, id string) (string, []byte, error) {
	switch id {
	case keptRun:
		return "knowingnode-load-b-20250304T050607Z.html", []byte(reportHTML), nil
	case runningRun:
		return "", nil, status.Error(codes.Unavailable, "load run is still running")
	}
	return "", nil, status.Errorf(codes.NotFound, "no report of load run %s", id)
}

// GET /v1/load/runs/{id}/report: the HTML as a download with its policy
// as headers; an unknown id 404 and a running run 503, in the one error
// shape; the api handler's conventions (405, HEAD, OPTIONS, no query).
func TestLoadReportRoute(t *testing.T) {
	h, err := New(t.Context(), Options{Identity: fixedIdentity{}, FanOut: &recordingFanOut{}, LoadReport: fakeReports})
	if err != nil {
		t.Fatal(err)
	}
	serve := func(method, path string, header ...string) *httptest.ResponseRecorder {
		r := httptest.NewRequest(method, "http://fe.example"+path, nil)
		for i := 0; i+1 < len(header); i += 2 {
			r.Header.Set(header[i], header[i+1])
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		return rec
	}
	path := func(id string) string { return "/v1/load/runs/" + id + "/report" }

	rec := serve(http.MethodGet, path(keptRun), "Sec-Fetch-Site", "same-origin", "Sec-Fetch-Mode", "navigate")
	if rec.Code != http.StatusOK || rec.Body.String() != reportHTML {
		t.Fatalf("GET a kept report: %d %q", rec.Code, rec.Body)
	}
	for k, want := range map[string]string{
		"Content-Type":           "text/html; charset=utf-8",
		"Content-Disposition":    `attachment; filename="knowingnode-load-b-20250304T050607Z.html"`,
		"Content-Length":         "34",
		"X-Content-Type-Options": "nosniff",
		"Cache-Control":          "no-store",
		"Referrer-Policy":        "no-referrer",
	} {
		if got := rec.Header().Get(k); got != want {
			t.Errorf("%s: %q, want %q", k, got, want)
		}
	}
	csp := rec.Header().Get("Content-Security-Policy")
	for _, want := range []string{"default-src 'none'", "sandbox allow-scripts", "frame-ancestors 'none'"} {
		if !strings.Contains(csp, want) {
			t.Errorf("Content-Security-Policy %q lacks %q", csp, want)
		}
	}
	if rec := serve(http.MethodHead, path(keptRun)); rec.Code != http.StatusOK || rec.Header().Get("Content-Disposition") == "" {
		t.Errorf("HEAD: %d %v", rec.Code, rec.Header())
	}

	for _, c := range []struct {
		what, method, path string
		status, code       int
		in                 string
	}{
		{"an unknown run", http.MethodGet, path("00000000000000000000000000000000"), 404, int(codes.NotFound), "no report"},
		{"not an id", http.MethodGet, path("x"), 404, int(codes.NotFound), "no report"},
		{"a running run", http.MethodGet, path(runningRun), 503, int(codes.Unavailable), "still running"},
		{"a query", http.MethodGet, path(keptRun) + "?download=1", 400, int(codes.InvalidArgument), "takes none"},
		{"a POST", http.MethodPost, path(keptRun), 405, int(codes.Unimplemented), "GET, HEAD, OPTIONS"},
		{"a DELETE", http.MethodDelete, path(keptRun), 405, int(codes.Unimplemented), "GET, HEAD, OPTIONS"},
		{"no run id", http.MethodGet, "/v1/load/runs/report", 404, int(codes.NotFound), ""},
		{"a cross-site GET", http.MethodGet, path(keptRun), 403, int(codes.PermissionDenied), "--allow-cross-site"},
	} {
		var rec *httptest.ResponseRecorder
		if c.what == "a cross-site GET" {
			rec = serve(c.method, c.path, "Sec-Fetch-Site", "cross-site", "Origin", "http://evil.example")
		} else {
			rec = serve(c.method, c.path)
		}
		if rec.Code != c.status {
			t.Errorf("%s: %d %s; want %d", c.what, rec.Code, rec.Body, c.status)
			continue
		}
		if code, msg := errorJSON(t, rec); code != c.code || !strings.Contains(msg, c.in) {
			t.Errorf("%s: code %d %q; want %d saying %q", c.what, code, msg, c.code, c.in)
		}
		if strings.Contains(rec.Body.String(), reportHTML) {
			t.Errorf("%s: the report was served", c.what)
		}
	}
	if rec := serve(http.MethodGet, path(runningRun)); rec.Header().Get("Retry-After") == "" {
		t.Errorf("503 without Retry-After")
	}
	if rec := serve(http.MethodOptions, path(keptRun)); rec.Code != http.StatusNoContent || rec.Header().Get("Allow") != "GET, HEAD, OPTIONS" {
		t.Errorf("OPTIONS: %d, Allow %q", rec.Code, rec.Header().Get("Allow"))
	}

	// Without reports (no LoadService), the path is the API's 404.
	h, err = New(t.Context(), Options{Identity: fixedIdentity{}, FanOut: &recordingFanOut{}})
	if err != nil {
		t.Fatal(err)
	}
	if rec := serve(http.MethodGet, path(keptRun)); rec.Code != http.StatusNotFound {
		t.Errorf("GET a report with no LoadReport: %d %s", rec.Code, rec.Body)
	} else {
		errorJSON(t, rec)
	}
}
