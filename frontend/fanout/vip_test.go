package fanout

import (
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	knowingnodev1 "github.com/knowingnode/knowingnode/gen/knowingnode/v1"
)

// vip forwards each new TCP connection to the backend *to holds at that
// moment, as kube-proxy does for a ClusterIP Service: one address, the pod
// behind a connection chosen when it opens.
func vip(t *testing.T, to *atomic.Pointer[string]) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	t.Cleanup(func() {
		lis.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			in, err := lis.Accept()
			if err != nil {
				return
			}
			out, err := net.Dial("tcp", *to.Load())
			if err != nil {
				in.Close()
				continue
			}
			mu.Lock()
			conns = append(conns, in, out)
			mu.Unlock()
			wg.Add(2)
			go func() { defer wg.Done(); io.Copy(out, in); out.Close() }()
			go func() { defer wg.Done(); io.Copy(in, out); in.Close() }()
		}
	}()
	return lis.Addr().String()
}

// TestEachLetsGoOfADrainingPodBehindAVIP: the pod a VIP connection reached
// announces its drain and leaves the Service (new connections go to another
// pod); EACH lets go of the draining pod's connection, and its next call
// reaches the ready pod behind the same VIP instead of reporting DRAINING
// until the draining pod closes the connection itself.
func TestEachLetsGoOfADrainingPodBehindAVIP(t *testing.T) {
	draining, ready := startBackend(t, "draining", "node-a"), startBackend(t, "ready", "node-b")
	var to atomic.Pointer[string]
	to.Store(&draining.addr)
	s, _ := newService(t, Options{}, vip(t, &to))
	each := func() *knowingnodev1.BackendResult {
		resp, err := s.FanOut(t.Context(), &knowingnodev1.FanOutRequest{})
		if err != nil || len(resp.GetResults()) != 1 {
			t.Fatalf("EACH through the VIP: %v %v", err, resp)
		}
		return resp.GetResults()[0]
	}
	if r := each(); r.GetIdentity().GetPodName() != "draining" {
		t.Fatalf("before the drain: %v; want the first pod", r)
	}
	draining.health.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
	to.Store(&ready.addr)
	deadline := time.Now().Add(10 * time.Second)
	for {
		r := each()
		if r.Code == "OK" && r.GetIdentity().GetPodName() == "ready" {
			return
		}
		if r.Code != "OK" && r.Code != CodeDraining {
			t.Fatalf("EACH through the VIP during the drain: %v; want the draining or the ready pod, never a failure", r)
		}
		if time.Now().After(deadline) {
			t.Fatalf("10s after the drain EACH through the VIP still answers %v; want the ready pod", r)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
