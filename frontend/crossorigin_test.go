package main

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/knowingnode/knowingnode/harness/proc"
)

// A page on another site cannot drive the frontend through its visitors'
// browsers: a cross-site POST /v1/load sent as text/plain (a "simple"
// request, no preflight) started a full load, and a cross-site GET /hostz
// ran a fan-out. Both are refused 403 naming --allow-cross-site; the same
// requests from the page itself, or from curl, pass; and the flag lets
// them through.
func TestCrossSiteRefusedOnTheBinary(t *testing.T) {
	dir := proc.Build(t, "../backend", ".")
	be := startProcess(t, dir, "backend", []string{"POD_NAME=backend-0"},
		"--grpc-addr", "127.0.0.1:0", "--admin-addr", "", "--downward-dir", "")
	args := []string{"--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0", "--downward-dir", "",
		"--target", "b=static:///" + be.Addrs["grpc"], "--load-max-duration", "1s"}
	strict := startProcess(t, dir, "frontend", []string{"POD_NAME=frontend-0"}, args...)
	open := startProcess(t, dir, "frontend", []string{"POD_NAME=frontend-1"}, append(args, "--allow-cross-site")...)

	do := func(fe *proc.Process, method, path string, headers map[string]string) (int, string) {
		t.Helper()
		var body io.Reader
		if method == http.MethodPost {
			body = strings.NewReader(`{"rate":2,"duration":"0.5s"}`)
		}
		req, err := http.NewRequestWithContext(t.Context(), method, "http://"+fe.Addrs["http"]+path, body)
		if err != nil {
			t.Fatal(err)
		}
		if method == http.MethodPost {
			req.Header.Set("Content-Type", "text/plain")
		}
		for k, v := range headers {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	crossSite := map[string]string{"Sec-Fetch-Site": "cross-site", "Origin": "https://evil.example"}
	sameOrigin := map[string]string{"Sec-Fetch-Site": "same-origin"}
	for _, c := range []struct{ method, path string }{{http.MethodPost, "/v1/load"}, {http.MethodGet, "/hostz"}, {http.MethodGet, "/v1/fanout:stream"}} {
		if code, body := do(strict, c.method, c.path, crossSite); code != http.StatusForbidden || !strings.Contains(body, "--allow-cross-site") ||
			!strings.HasPrefix(body, `{"error":`) {
			t.Errorf("cross-site %s %s: %d %s; want 403 in the error shape naming --allow-cross-site", c.method, c.path, code, body)
		}
		for name, fe := range map[string]*proc.Process{"same origin": strict, "cross-site with --allow-cross-site": open} {
			h := sameOrigin
			if fe == open {
				h = crossSite
			}
			if code, body := do(fe, c.method, c.path, h); code != http.StatusOK {
				t.Errorf("%s %s from %s: %d %s; want 200", c.method, c.path, name, code, body)
			}
		}
		if code, body := do(strict, c.method, c.path, nil); code != http.StatusOK {
			t.Errorf("%s %s without browser headers: %d %s; want 200", c.method, c.path, code, body)
		}
	}
}
