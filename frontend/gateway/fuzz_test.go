package gateway

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// FuzzGatewayRequest sends any path and query, with each method, through the
// whole HTTP handler: no 5xx, API answers carry nosniff and no-store, a
// query that does not parse is never a 200, and a fan-out answered with 200
// was for exactly the target the query named.
func FuzzGatewayRequest(f *testing.F) {
	for _, s := range [][2]string{
		{"/v1/fanout", "mode=EACH&target=srv;x"},
		{"/v1/fanout", "mode=each&target=srv&count=3&timeout=2s"},
		{"/v1/fanout", "mode=EACH&mode=BALANCED"},
		{"/v1/fanout", "target=%FF"},
		{"/v1/fanout", "count=-1&timeout=-5s"},
		{"/v1/fanout", "count=99999999999999999999&timeout=1e400s"},
		{"/v1/fanout", "targt=x"},
		{"/v1/identity", "mode=junk"},
		{"/v1/targets", ""},
		{"/hostz", "x"},
		{"/%FF", ""},
		{"/%C0%AF", ""},
		{"/v1/" + strings.Repeat("a/", 100), strings.Repeat("target=x&", 10)},
		{"/openapi.json", "a=b"},
		{"/", "mode=EACH"},
	} {
		f.Add(uint8(0), s[0], s[1])
	}
	fo := &recordingFanOut{}
	h, err := New(f.Context(), Options{Identity: fixedIdentity{}, FanOut: fo, Registerer: prometheus.NewRegistry(),
		Page: http.NotFoundHandler()})
	if err != nil {
		f.Fatal(err)
	}
	methods := []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodOptions, http.MethodDelete, "PROPFIND"}
	f.Fuzz(func(t *testing.T, m uint8, rawPath, rawQuery string) {
		path, err := url.PathUnescape(rawPath)
		if err != nil || !strings.HasPrefix(path, "/") {
			return // not a path a server would hand a handler
		}
		method := methods[int(m)%len(methods)]
		req := httptest.NewRequest(http.MethodGet, "/", nil)
		req.Method = method
		req.URL = &url.URL{Path: path, RawPath: rawPath, RawQuery: rawQuery}
		req.RequestURI = req.URL.RequestURI()
		fo.last = nil
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code >= 500 {
			t.Fatalf("%s %q ? %q: %d %s", method, path, rawQuery, rec.Code, rec.Body)
		}
		api := strings.HasPrefix(path, "/v1/") || path == "/hostz"
		if api && (rec.Header().Get("X-Content-Type-Options") != "nosniff" || rec.Header().Get("Cache-Control") != "no-store") {
			t.Errorf("%s %q ? %q: %d without nosniff and no-store", method, path, rawQuery, rec.Code)
		}
		if !api || rec.Code != http.StatusOK {
			return
		}
		q, err := url.ParseQuery(rawQuery)
		if err != nil {
			t.Fatalf("%s %q ? %q: 200 for a query that does not parse (%v)", method, path, rawQuery, err)
		}
		if fo.last != nil && path == "/v1/fanout" && fo.last.Target != q.Get("target") {
			t.Fatalf("%s %q ? %q: answered for target %q", method, path, rawQuery, fo.last.Target)
		}
	})
}
