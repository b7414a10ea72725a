package gateway

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	knowingnodev1 "github.com/knowingnode/knowingnode/gen/knowingnode/v1"
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

// FuzzFanOutJSON encodes fan-out replies, and their stream lines, built from
// any strings, numbers and durations, with the gateway's marshaler (one for
// the whole run, so that its identity cache fills and is hit) and with
// JSONPb: the bytes are the same, or both refuse. Two identities differ in
// one field, chosen by the input, and share the reply.
func FuzzFanOutJSON(f *testing.F) {
	for i, p := range pieces {
		f.Add(p, pieces[(i+1)%len(pieces)], pieces[(i+7)%len(pieces)], int64(i)-3, int32(i*37_000_001), uint8(i))
	}
	f.Add("backend-0", "node-a", "zone-a", int64(0), int32(345000), uint8(0))
	f.Add("a\xffb", "", "\u2028<&>", int64(315576000001), int32(-1), uint8(255))
	m := gatewayMarshaler(f)
	variants := identityVariants()
	f.Fuzz(func(t *testing.T, a, b, c string, secs int64, nanos int32, pick uint8) {
		id := podIdentity("backend", int(pick), knowingnodev1.Tier(pick%4))
		id.PodName, id.NodeName, id.Zone = a, b, c
		id.Labels[a] = b
		id.Sources[c] = knowingnodev1.Source(pick % 5)
		id.StartTime = &timestamppb.Timestamp{Seconds: secs, Nanos: nanos}
		other := podIdentity("backend", int(pick), knowingnodev1.Tier(pick%4))
		other.PodName, other.NodeName, other.Zone = a, b, c
		other.Labels[a] = b
		other.Sources[c] = knowingnodev1.Source(pick % 5)
		other.StartTime = &timestamppb.Timestamp{Seconds: secs, Nanos: nanos}
		variants[int(pick)%len(variants)].change(other.ProtoReflect())
		lat := &durationpb.Duration{Seconds: secs, Nanos: nanos}
		resp := &knowingnodev1.FanOutResponse{Frontend: id, Target: c, Mode: knowingnodev1.FanOutMode(pick % 4),
			Results: []*knowingnodev1.BackendResult{
				{Address: a, DnsName: b, Identity: id, Code: "OK", Latency: lat, Calls: nanos},
				{Address: b, Identity: other, Code: c, Message: a, Calls: 1},
				{Address: c, Code: "UNAVAILABLE", Message: b + a},
			},
			Summary: &knowingnodev1.FanOutSummary{Total: 3, ByNode: map[string]int32{a: 1, b: 2}, ByCode: map[string]int32{c: nanos},
				LatencyMax: lat, Duration: &durationpb.Duration{Nanos: nanos % 1_000_000_000}},
			Discovery: &knowingnodev1.TargetState{Name: a, Mode: knowingnodev1.DiscoveryMode(pick % 8), LastRefresh: id.StartTime, Refreshes: secs,
				Endpoints: []*knowingnodev1.Endpoint{{Address: a, Slice: &knowingnodev1.EndpointSliceInfo{Ready: pick%2 == 0, HintZones: []string{b, c}}}},
				Compare:   []*knowingnodev1.TargetComparison{{Other: b, OnlyDns: []string{a}, Agree: pick%3 == 0}}},
		}
		sameAsJSONPb(t, m, reference, resp, "reply")
		for i, s := range streamMessages(resp) {
			sameAsJSONPb(t, m, reference, s, fmt.Sprintf("stream line %d", i))
		}
	})
}
