package web

import (
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
)

func get(t *testing.T, h http.Handler, method, target string, hdr map[string]string) *http.Response {
	t.Helper()
	req := httptest.NewRequest(method, target, nil)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Result()
}

func body(t *testing.T, resp *http.Response) string {
	t.Helper()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func checkSecurityHeaders(t *testing.T, what string, h http.Header) {
	t.Helper()
	want := map[string]string{
		"X-Content-Type-Options": "nosniff",
		"Referrer-Policy":        "no-referrer",
		"X-Frame-Options":        "DENY",
	}
	for k, v := range want {
		if got := h.Get(k); got != v {
			t.Errorf("%s: %s = %q, want %q", what, k, got, v)
		}
	}
	csp := h.Get("Content-Security-Policy")
	for _, d := range []string{"default-src 'self'", "script-src 'self'", "connect-src 'self'", "frame-ancestors 'none'"} {
		if !strings.Contains(csp, d) {
			t.Errorf("%s: CSP %q lacks %q", what, csp, d)
		}
	}
	// Nothing beyond the page's own origin: no inline code, no other hosts.
	for _, bad := range []string{"unsafe-inline", "unsafe-eval", "*", "http:", "https:", "data:"} {
		if strings.Contains(csp, bad) {
			t.Errorf("%s: CSP %q allows %q", what, csp, bad)
		}
	}
	for k := range h {
		if strings.HasPrefix(strings.ToLower(k), "access-control-") {
			t.Errorf("%s: CORS header %s set", what, k)
		}
	}
}

func TestPageAndAssets(t *testing.T) {
	h := Handler()
	cases := []struct {
		path, contentType, contains string
	}{
		{"/", "text/html", `<script src="app.js"`},
		{"/app.js", "text/javascript", "v1/fanout"},
		{"/style.css", "text/css", ".node-group"},
		{"/favicon.svg", "image/svg+xml", "<svg"},
	}
	for _, c := range cases {
		resp := get(t, h, "GET", c.path, map[string]string{"Origin": "http://evil.example"})
		b := body(t, resp)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: status %d", c.path, resp.StatusCode)
		}
		// With nosniff the browser refuses a script served under the wrong type.
		if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, c.contentType) {
			t.Errorf("GET %s: Content-Type %q, want %s", c.path, ct, c.contentType)
		}
		if !strings.Contains(b, c.contains) {
			t.Errorf("GET %s: body lacks %q", c.path, c.contains)
		}
		if resp.Header.Get("ETag") == "" {
			t.Errorf("GET %s: no ETag", c.path)
		}
		checkSecurityHeaders(t, "GET "+c.path, resp.Header)
	}
}

// The CSP forbids inline script and style; the page must not depend on them,
// nor on anything fetched from another origin.
func TestPageHasNoInlineOrExternalCode(t *testing.T) {
	page := body(t, get(t, Handler(), "GET", "/", nil))
	for _, re := range []string{
		`<script(?:\s[^>]*)?>\s*[^<\s]`, // a script element with a body
		`\son[a-z]+\s*=`,                // event handler attributes
		`\sstyle\s*=`,                   // style attributes
		`<style`,                        // style elements
		`(?:src|href)\s*=\s*"(?:https?:)?//`,
	} {
		if m := regexp.MustCompile(re).FindString(page); m != "" {
			t.Errorf("index.html has %q (matched %s)", m, re)
		}
	}
}

func TestErrorsCarryHeadersToo(t *testing.T) {
	h := Handler()
	resp := get(t, h, "GET", "/no-such-file.js", nil)
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("missing file: status %d, want 404", resp.StatusCode)
	}
	checkSecurityHeaders(t, "404", resp.Header)

	resp = get(t, h, "POST", "/", nil)
	if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != "GET, HEAD" {
		t.Errorf("POST /: status %d Allow %q, want 405 with Allow: GET, HEAD", resp.StatusCode, resp.Header.Get("Allow"))
	}
	checkSecurityHeaders(t, "405", resp.Header)

	// A CORS preflight gets no permission.
	resp = get(t, h, "OPTIONS", "/", map[string]string{
		"Origin": "http://evil.example", "Access-Control-Request-Method": "GET",
	})
	if resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusNoContent {
		t.Errorf("OPTIONS preflight: status %d, want a refusal", resp.StatusCode)
	}
	checkSecurityHeaders(t, "OPTIONS", resp.Header)
}

func TestRevalidation(t *testing.T) {
	h := Handler()
	first := get(t, h, "GET", "/app.js", nil)
	tag := first.Header.Get("ETag")
	if first.Header.Get("Cache-Control") != "no-cache" {
		t.Errorf("Cache-Control %q, want no-cache so new releases are picked up", first.Header.Get("Cache-Control"))
	}
	again := get(t, h, "GET", "/app.js", map[string]string{"If-None-Match": tag})
	if again.StatusCode != http.StatusNotModified {
		t.Errorf("If-None-Match %s: status %d, want 304", tag, again.StatusCode)
	}
	if other := get(t, h, "GET", "/style.css", nil).Header.Get("ETag"); other == tag {
		t.Errorf("app.js and style.css share ETag %s", tag)
	}
}

func TestHeadServesNoBody(t *testing.T) {
	resp := get(t, Handler(), "HEAD", "/", nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("HEAD /: status %d", resp.StatusCode)
	}
	if b := body(t, resp); b != "" {
		t.Errorf("HEAD /: body of %d bytes", len(b))
	}
	checkSecurityHeaders(t, "HEAD", resp.Header)
}
