package loadreport

import (
	"testing"
	"time"

	knowingnodev1 "github.com/knowingnode/knowingnode/gen/knowingnode/v1"
	"github.com/knowingnode/knowingnode/internal/identity"
)

// BenchmarkCall is one GetIdentity over loopback with and without the
// per-call report: its cost is the difference (allocs/op are exact; time
// is noisy on a shared machine).
func BenchmarkCall(b *testing.B) {
	for _, tc := range []struct {
		name                    string
		off, interceptor, every bool
	}{{"new-samples", false, false, false}, {"every-call", false, false, true}, {"grpc-interceptor", false, true, true}, {"off", true, false, false}} {
		b.Run(tc.name, func(b *testing.B) {
			_, cc, _ := serveB(b, Config{Off: tc.off, EveryCall: tc.every, Utilization: 0.5, Interval: time.Second}, identity.NewServer(&knowingnodev1.Identity{PodName: "p"}), tc.interceptor)
			client := knowingnodev1.NewIdentityServiceClient(cc)
			req := &knowingnodev1.GetIdentityRequest{}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := client.GetIdentity(b.Context(), req); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
