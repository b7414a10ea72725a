package gateway

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/proto"

	knowingnodev1 "github.com/knowingnode/knowingnode/gen/knowingnode/v1"
	"github.com/knowingnode/knowingnode/internal/identity"
)

// A fixed reply is answered exactly as the gateway would encode it afresh:
// same status, headers and body; a reply not registered is encoded per call.
func TestFixedReplyIsAnsweredAsEncoded(t *testing.T) {
	ids := identity.NewServer(&knowingnodev1.Identity{PodName: "frontend-0", NodeName: "node-a",
		Labels: map[string]string{"app": "knowingnode", "tier": "frontend"}, Tier: knowingnodev1.Tier_TIER_FRONTEND})
	handler := func(fixed ...proto.Message) http.Handler {
		h, err := New(t.Context(), Options{Identity: ids, FanOut: &recordingFanOut{}, Registerer: prometheus.NewRegistry(), Fixed: fixed})
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	cached, fresh := handler(ids.Response()), handler()
	for _, c := range []struct{ method, target string }{
		{http.MethodGet, "/v1/identity"},
		{http.MethodHead, "/v1/identity"},
		{http.MethodGet, "/v1/identity?x=1"}, // refused before the gateway
		{http.MethodGet, "/v1/fanout?target=x"},
	} {
		got, want := serve(cached, c.method, c.target), serve(fresh, c.method, c.target)
		if got.Code != want.Code || got.Body.String() != want.Body.String() {
			t.Errorf("%s %s: cached %d %q, encoded afresh %d %q", c.method, c.target, got.Code, got.Body, want.Code, want.Body)
		}
		for k := range want.Header() {
			if got.Header().Get(k) != want.Header().Get(k) {
				t.Errorf("%s %s: header %s: cached %q, encoded afresh %q", c.method, c.target, k, got.Header().Get(k), want.Header().Get(k))
			}
		}
	}
	if body := serve(cached, http.MethodGet, "/v1/identity").Body.String(); !json.Valid([]byte(body)) || !strings.Contains(body, `"podName":"frontend-0"`) {
		t.Errorf("cached identity: %q", body)
	}
}

// A fixed reply that cannot be encoded is refused at start-up, naming it.
func TestFixedReplyMustEncode(t *testing.T) {
	bad := &knowingnodev1.Identity{PodName: "\xff"} // invalid UTF-8 in a string field
	_, err := New(t.Context(), Options{Identity: fixedIdentity{}, FanOut: &recordingFanOut{}, Fixed: []proto.Message{bad}})
	if err == nil || !strings.Contains(err.Error(), "fixed reply") {
		t.Fatalf("New with an unencodable fixed reply: %v, want an error naming it", err)
	}
}
