package gateway

import (
	"context"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"google.golang.org/grpc"

	"github.com/knowingnode/knowingnode/frontend/web"
	knowingnodev1 "github.com/knowingnode/knowingnode/gen/knowingnode/v1"
	"github.com/knowingnode/knowingnode/gen/openapi"
	"github.com/knowingnode/knowingnode/internal/streampipe"
)

// fakeLoad answers every load with an empty summary, at once.
type fakeLoad struct{}

func (fakeLoad) Run(ctx context.Context, _ *knowingnodev1.RunRequest, _ ...grpc.CallOption) (grpc.ServerStreamingClient[knowingnodev1.RunResponse], error) {
	return streampipe.Start(ctx, "/fake/Run", nil, func(s grpc.ServerStreamingServer[knowingnodev1.RunResponse]) error {
		return s.Send(&knowingnodev1.RunResponse{Result: &knowingnodev1.RunResponse_Summary{Summary: &knowingnodev1.LoadStats{}}})
	}), nil
}

// crossSiteGET is the decision for every path the frontend serves: may a
// browser on another site GET it? A route of the OpenAPI document missing
// here fails TestCrossOriginPolicyCoversEveryRoute: whoever adds one must
// decide. The page's own files are open by construction (static, free).
var crossSiteGET = map[string]bool{
	// The API: refused, whether or not the route costs backend calls.
	"/v1/identity":      false,
	"/v1/fanout":        false,
	"/v1/fanout:stream": false,
	"/v1/targets":       false,
	"/v1/targets:watch": false,
	"/v1/load":          false, // POST only; a GET is refused before its 405
	"/hostz":            false,
	"/v1/matrix":        false,
	"/v1/matrix:stream": false,
	"/v1/disagreements": false,
	// Not in the document (an HTML file, no gRPC method): LoadReportPath.
	"/v1/load/runs/0123456789abcdef0123456789abcdef/report": false,
	// Probes, metrics and the document: open (no backend call).
	"/healthz":      true,
	"/readyz":       true,
	"/metrics":      true,
	"/openapi.json": true,
}

// Every route of the OpenAPI document, every path of the page, and the
// probes, with a same-origin browser, a cross-site one (fetch metadata,
// and an older browser's foreign Origin) and no browser at all: cross-site
// GETs are refused where the table says, every cross-site unsafe method is
// refused, a refusal is 403 in the one error shape naming
// --allow-cross-site, and the flag lets everything through.
func TestCrossOriginPolicyCoversEveryRoute(t *testing.T) {
	routes, err := routesFromOpenAPI(openapi.JSON)
	if err != nil {
		t.Fatal(err)
	}
	paths := map[string][]string{} // path -> its methods
	for _, rt := range routes {
		if _, ok := crossSiteGET[rt.path]; !ok {
			t.Errorf("route %s of the OpenAPI document has no cross-site decision in crossSiteGET", rt.path)
		}
		paths[rt.path] = rt.methods
	}
	if !slices.ContainsFunc(slices.Collect(maps.Keys(crossSiteGET)), loadReportRoute.matches) {
		t.Errorf("the route %s has no cross-site decision in crossSiteGET", LoadReportPath)
	}
	for p := range crossSiteGET {
		if _, ok := paths[p]; !ok {
			paths[p] = []string{http.MethodGet}
		}
	}
	open := maps.Clone(crossSiteGET)
	for _, p := range web.Paths() {
		if _, ok := crossSiteGET[p]; ok {
			t.Errorf("page path %s is also in crossSiteGET", p)
		}
		paths[p], open[p] = []string{http.MethodGet}, true
	}
	for p := range paths {
		if !slices.Contains(paths[p], http.MethodGet) {
			paths[p] = append(paths[p], http.MethodGet) // a GET of a POST route is still decided
		}
		if !slices.Contains(paths[p], http.MethodPost) {
			paths[p] = append(paths[p], http.MethodPost) // an unsafe method everywhere
		}
	}
	browsers := []struct {
		name      string
		headers   map[string]string
		crossSite bool
	}{
		{"no browser", nil, false},
		{"same origin", map[string]string{"Sec-Fetch-Site": "same-origin", "Origin": "http://fe.example"}, false},
		{"typed in the address bar", map[string]string{"Sec-Fetch-Site": "none"}, false},
		{"cross-site", map[string]string{"Sec-Fetch-Site": "cross-site", "Origin": "http://evil.example"}, true},
		{"same-site, other origin", map[string]string{"Sec-Fetch-Site": "same-site", "Origin": "http://other.fe.example"}, true},
		{"older browser, foreign Origin", map[string]string{"Origin": "http://evil.example"}, true},
	}
	for _, allow := range []bool{false, true} {
		h, err := New(t.Context(), Options{Identity: fixedIdentity{}, FanOut: &recordingFanOut{}, Load: fakeLoad{}, LoadReport: fakeReports,
			Page: web.Handler(), Metrics: http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}), AllowCrossSite: allow})
		if err != nil {
			t.Fatal(err)
		}
		for path, methods := range paths {
			for _, m := range methods {
				for _, b := range browsers {
					var body *strings.Reader
					if m == http.MethodPost {
						body = strings.NewReader(`{"rate":1,"duration":"1s"}`)
					} else {
						body = strings.NewReader("")
					}
					r := httptest.NewRequest(m, "http://fe.example"+path, body)
					if m == http.MethodPost {
						r.Header.Set("Content-Type", "text/plain") // a "simple" request: no preflight
					}
					for k, v := range b.headers {
						r.Header.Set(k, v)
					}
					rec := httptest.NewRecorder()
					h.ServeHTTP(rec, r)
					refuse := !allow && b.crossSite && (m != http.MethodGet || !open[path])
					if got := rec.Code == http.StatusForbidden; got != refuse {
						t.Errorf("allow-cross-site=%v, %s %s from %s: %d %s; refused %v, want %v",
							allow, m, path, b.name, rec.Code, rec.Body, got, refuse)
						continue
					}
					if refuse {
						if code, msg := errorJSON(t, rec); code != 7 || !strings.Contains(msg, "--allow-cross-site") {
							t.Errorf("%s %s from %s: refusal code %d %q; want PERMISSION_DENIED naming --allow-cross-site", m, path, b.name, code, msg)
						}
					}
				}
			}
		}
	}
}
