package gateway

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	knowingnodev1 "github.com/knowingnode/knowingnode/gen/knowingnode/v1"
	"github.com/knowingnode/knowingnode/internal/identity"
)

// benchIdentity is an identity with every field set, as a pod's would be.
func benchIdentity() *knowingnodev1.Identity {
	return &knowingnodev1.Identity{
		PodName: "frontend-7d9c5b8f6-x2x4k", PodNamespace: "knowingnode", PodIp: "10.244.1.17",
		PodIps: []string{"10.244.1.17", "fd00::17"}, PodUid: "0d6f1a2e-7b7c-4c55-9d9a-3f1e8c2b1a77",
		NodeName: "node-a", NodeIp: "172.18.0.2", ServiceAccount: "frontend", Hostname: "frontend-7d9c5b8f6-x2x4k",
		Labels:      map[string]string{"app.kubernetes.io/name": "knowingnode", "app.kubernetes.io/component": "frontend", "pod-template-hash": "7d9c5b8f6"},
		Annotations: map[string]string{"kubectl.kubernetes.io/default-container": "frontend"},
		Tier:        knowingnodev1.Tier_TIER_FRONTEND,
	}
}

// fixedFanOut answers every fan-out with the same three-backend reply.
type fixedFanOut struct {
	knowingnodev1.UnimplementedFanOutServiceServer
	resp *knowingnodev1.FanOutResponse
}

func (f fixedFanOut) FanOut(context.Context, *knowingnodev1.FanOutRequest) (*knowingnodev1.FanOutResponse, error) {
	return f.resp, nil
}

func benchHandler(b *testing.B) http.Handler {
	id := benchIdentity()
	resp := &knowingnodev1.FanOutResponse{Frontend: id, Target: "backends", Mode: knowingnodev1.FanOutMode_FAN_OUT_MODE_EACH,
		Summary: &knowingnodev1.FanOutSummary{Total: 3, Ok: 3, ByCode: map[string]int32{"OK": 3}, Duration: durationpb.New(1234567)}}
	for range 3 {
		resp.Results = append(resp.Results, &knowingnodev1.BackendResult{Address: "10.244.2.9:9090", DnsName: "backend-0.backend.knowingnode.svc.cluster.local.",
			Identity: benchIdentity(), Code: "OK", Calls: 1, Latency: durationpb.New(345678)})
	}
	ids := identity.NewServer(id)
	h, err := New(b.Context(), Options{Identity: ids, FanOut: fixedFanOut{resp: resp}, Registerer: prometheus.NewRegistry(), Fixed: []proto.Message{ids.Response()}})
	if err != nil {
		b.Fatal(err)
	}
	return h
}

// BenchmarkREST measures the frontend's HTTP face in-process, from the
// request to the written body, metrics on, as the binary serves it.
func BenchmarkREST(b *testing.B) {
	for _, path := range []string{"/v1/identity", "/v1/fanout"} {
		b.Run(path[1:], func(b *testing.B) {
			h := benchHandler(b)
			req := httptest.NewRequest(http.MethodGet, path, nil)
			b.ReportAllocs()
			for b.Loop() {
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, req)
				if rec.Code != http.StatusOK {
					b.Fatalf("%s: %d %s", path, rec.Code, rec.Body)
				}
			}
		})
	}
}
