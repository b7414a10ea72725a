package gateway

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

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
	var e struct {
		Code    int
		Message string
	}
	json.Unmarshal(rec.Body.Bytes(), &e)
	if rec.Code != http.StatusRequestURITooLong || e.Code != 3 || !strings.Contains(e.Message, "exceeds the limit") {
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
