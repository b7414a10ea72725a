package main

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestSameSiteOnly(t *testing.T) {
	ok := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("ran")) })
	for _, c := range []struct {
		name    string
		path    string
		headers map[string]string
		allow   bool
		want    int
	}{
		{"curl, no browser headers", "/v1/fanout", nil, false, 200},
		{"same origin", "/v1/fanout", map[string]string{"Sec-Fetch-Site": "same-origin", "Origin": "http://fe.example"}, false, 200},
		{"typed in the address bar", "/v1/fanout", map[string]string{"Sec-Fetch-Site": "none"}, false, 200},
		{"cross-site", "/v1/fanout", map[string]string{"Sec-Fetch-Site": "cross-site"}, false, 403},
		{"same-site, other origin", "/v1/fanout", map[string]string{"Sec-Fetch-Site": "same-site"}, false, 403},
		{"foreign Origin, older browser", "/v1/fanout", map[string]string{"Origin": "http://evil.example"}, false, 403},
		{"own Origin, older browser", "/v1/fanout", map[string]string{"Origin": "http://fe.example"}, false, 200},
		{"cross-site under the prefix", "/v1/fanout/x", map[string]string{"Sec-Fetch-Site": "cross-site"}, false, 403},
		{"cross-site, cheap path", "/v1/identity", map[string]string{"Sec-Fetch-Site": "cross-site"}, false, 200},
		{"cross-site, prefix of another word", "/v1/fanouts", map[string]string{"Sec-Fetch-Site": "cross-site"}, false, 200},
		{"cross-site, the streamed fan-out", "/v1/fanout:stream", map[string]string{"Sec-Fetch-Site": "cross-site"}, false, 403},
		{"cross-site, the watch", "/v1/targets:watch", map[string]string{"Sec-Fetch-Site": "cross-site"}, false, 200},
		{"cross-site allowed by flag", "/v1/fanout", map[string]string{"Sec-Fetch-Site": "cross-site"}, true, 200},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, "http://fe.example"+c.path, nil)
			for k, v := range c.headers {
				r.Header.Set(k, v)
			}
			rec := httptest.NewRecorder()
			sameSiteOnly(ok, c.allow, fanOutPaths...).ServeHTTP(rec, r)
			if rec.Code != c.want {
				t.Fatalf("status %d, want %d: %s", rec.Code, c.want, rec.Body)
			}
			if c.want == 403 && !strings.Contains(rec.Body.String(), "allow-cross-site") {
				t.Errorf("refusal %s does not name the flag", rec.Body)
			}
		})
	}
}

func TestRetryAfterOn429(t *testing.T) {
	for _, code := range []int{200, 429, 503} {
		h := retryAfter(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(code) }))
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/v1/fanout", nil))
		if got, want := rec.Header().Get("Retry-After") != "", code == 429; got != want {
			t.Errorf("status %d: Retry-After %q", code, rec.Header().Get("Retry-After"))
		}
	}
}
