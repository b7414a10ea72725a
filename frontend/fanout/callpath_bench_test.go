package fanout

import (
	"context"
	"fmt"
	"testing"
	"time"

	"google.golang.org/grpc"

	knowingnodev1 "github.com/knowingnode/knowingnode/gen/knowingnode/v1"
	"github.com/knowingnode/knowingnode/internal/discovery"
)

// stubClient answers at once, in memory: what is left is the fan-out's own
// path per backend call (scheduling, context, result, latency), without
// gRPC's or the backend's.
type stubClient struct {
	resp *knowingnodev1.GetIdentityResponse
}

func (c stubClient) GetIdentity(context.Context, *knowingnodev1.GetIdentityRequest, ...grpc.CallOption) (*knowingnodev1.GetIdentityResponse, error) {
	return c.resp, nil
}

// BenchmarkEachCallPath is an EACH fan-out's own cost per backend call,
// over 100 in-memory backends; allocs/op ÷ 100 is allocations per call.
func BenchmarkEachCallPath(b *testing.B) {
	const n = 100
	s := New(&knowingnodev1.Identity{PodName: "frontend-0"}, Options{BackendTimeout: 2 * time.Second, Concurrency: 64})
	b.Cleanup(func() { s.Close(context.Background()) })
	resp := &knowingnodev1.GetIdentityResponse{Identity: podIdentity(0)}
	var bs []*backend
	for i := range n {
		bs = append(bs, &backend{ep: discovery.Endpoint{Addr: fmt.Sprintf("10.0.0.%d:9090", i)}, client: stubClient{resp}})
	}
	b.ReportAllocs()
	for b.Loop() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if rs := s.each(ctx, nil, bs, 64, nil); len(rs) != n || rs[n-1].Code != "OK" {
			b.Fatalf("results %v", rs[n-1])
		}
		cancel()
	}
}
