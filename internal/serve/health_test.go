package serve

import (
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
)

// TestHealthPerService: every registered service has a health status of its
// own, SERVING while up and NOT_SERVING from the start of shutdown, like "";
// a name that is not served stays NOT_FOUND.
func TestHealthPerService(t *testing.T) {
	cfg := testConfig()
	cfg.DrainDelay = 2 * time.Second
	h := start(t, cfg)
	ctx := t.Context()
	client := healthpb.NewHealthClient(h.conn)
	services := []string{"knowingnode.v1.IdentityService", "grpc.health.v1.Health", "grpc.reflection.v1.ServerReflection"}

	checkAll := func(when string, want healthpb.HealthCheckResponse_ServingStatus) {
		t.Helper()
		for _, svc := range append([]string{""}, services...) {
			r, err := client.Check(ctx, &healthpb.HealthCheckRequest{Service: svc})
			if err != nil || r.GetStatus() != want {
				t.Errorf("%s: Check(%q) = %v, %v; want %v", when, svc, r.GetStatus(), err, want)
			}
		}
	}
	checkAll("while up", healthpb.HealthCheckResponse_SERVING)
	if _, err := client.Check(ctx, &healthpb.HealthCheckRequest{Service: "knowingnode.v1.NoSuchService"}); status.Code(err) != codes.NotFound {
		t.Errorf("Check(an unserved name) = %v; want NotFound", err)
	}

	h.cancel()
	h.logs.wait(t, "shutdown: NOT_SERVING")
	checkAll("during drain", healthpb.HealthCheckResponse_NOT_SERVING)
	if h.logs.seen("shutdown: stopping") {
		t.Fatal("inconclusive: the drain delay ended before the checks above ran")
	}
}
