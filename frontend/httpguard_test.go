package main

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

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
