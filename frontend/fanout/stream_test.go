package fanout

import (
	"context"
	"fmt"
	"net"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	knowingnodev1 "github.com/knowingnode/knowingnode/gen/knowingnode/v1"
	"github.com/knowingnode/knowingnode/harness/clusterdns"
	"github.com/knowingnode/knowingnode/internal/discovery"
)

// serveFanOut serves s over real gRPC on loopback and returns a client.
func serveFanOut(t *testing.T, s *Service) knowingnodev1.FanOutServiceClient {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	knowingnodev1.RegisterFanOutServiceServer(srv, s)
	go srv.Serve(lis)
	cc, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	// Registered after newService's, so run before: the streams end first.
	t.Cleanup(func() { cc.Close(); srv.Stop() })
	return knowingnodev1.NewFanOutServiceClient(cc)
}

// dnsService is a Service over a headless Service of a real DNS server.
func dnsService(t *testing.T, o Options, pods int) (*Service, *discovery.Target, *clusterdns.Server) {
	t.Helper()
	dns, err := clusterdns.Start("127.0.0.1:0", "cluster.local.")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dns.Close() })
	setPods(t, dns, pods)
	spec, err := discovery.ParseTarget("web=dns://" + dns.Addr() + "/web.ns.svc.cluster.local:9090")
	if err != nil {
		t.Fatal(err)
	}
	s, target := newServiceSpec(t, o, spec)
	return s, target, dns
}

func setPods(t *testing.T, dns *clusterdns.Server, n int) {
	t.Helper()
	var eps []clusterdns.Endpoint
	for i := range n {
		eps = append(eps, clusterdns.Endpoint{IP: fmt.Sprintf("10.244.0.%d", 10+i)})
	}
	if err := dns.SetService(clusterdns.Service{Namespace: "ns", Name: "web", ClusterIP: "None", Endpoints: eps}); err != nil {
		t.Fatal(err)
	}
}

func TestWatchTargetsSendsChangesOnly(t *testing.T) {
	s, target, dns := dnsService(t, Options{}, 2)
	c := serveFanOut(t, s)
	stream, err := c.WatchTargets(t.Context(), &knowingnodev1.WatchTargetsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	recv := func(step string) *knowingnodev1.WatchTargetsResponse {
		t.Helper()
		m, err := stream.Recv()
		if err != nil {
			t.Fatalf("%s: %v", step, err)
		}
		return m
	}
	first := recv("initial state")
	if !first.Initial || first.DefaultTarget != "web" || first.Target.GetName() != "web" || len(first.Target.GetEndpoints()) != 2 {
		t.Fatalf("initial message: %v; want web's 2 endpoints, initial", first)
	}
	// An unchanged refresh sends nothing: the next message is the change.
	target.Refresh(t.Context())
	setPods(t, dns, 3)
	target.Refresh(t.Context())
	next := recv("after a pod was added")
	if next.Initial || len(next.Target.GetEndpoints()) != 3 || next.Target.GetRefreshes() != 3 {
		t.Fatalf("after the change: initial %v, %d endpoints, refreshes %d; want not initial, 3, 3 (the unchanged refresh sent nothing)",
			next.Initial, len(next.Target.GetEndpoints()), next.Target.GetRefreshes())
	}
	// A failing DNS is a change too: the error appears, the endpoints stay.
	dns.SetFailure(2) // SERVFAIL
	target.Refresh(t.Context())
	failed := recv("after DNS failed")
	if failed.Target.GetLastError() == "" || len(failed.Target.GetEndpoints()) != 3 {
		t.Fatalf("after DNS failed: error %q, %d endpoints; want an error and the 3 kept", failed.Target.GetLastError(), len(failed.Target.GetEndpoints()))
	}
}

func TestWatchTargetsLimitsAndEnds(t *testing.T) {
	stopping, stop := context.WithCancel(context.Background())
	defer stop()
	s, _, _ := dnsService(t, Options{MaxWatchers: 1, Stopping: stopping}, 1)
	c := serveFanOut(t, s)
	first, err := c.WatchTargets(t.Context(), &knowingnodev1.WatchTargetsRequest{Target: "web"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := first.Recv(); err != nil {
		t.Fatal(err)
	}
	second, err := c.WatchTargets(t.Context(), &knowingnodev1.WatchTargetsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = second.Recv()
	if status.Code(err) != codes.ResourceExhausted || !strings.Contains(err.Error(), "max-watchers") {
		t.Errorf("a watcher over the limit: %v; want RESOURCE_EXHAUSTED naming max-watchers", err)
	}
	unknown, err := c.WatchTargets(t.Context(), &knowingnodev1.WatchTargetsRequest{Target: "nope"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := unknown.Recv(); status.Code(err) != codes.NotFound {
		t.Errorf("an unknown target: %v; want NOT_FOUND", err)
	}
	// The server's stop phase ends the watch, which frees its slot.
	stop()
	if _, err := first.Recv(); status.Code(err) != codes.Unavailable {
		t.Errorf("after the stop phase began: %v; want UNAVAILABLE", err)
	}
}

func TestStreamingOff(t *testing.T) {
	s, _, _ := dnsService(t, Options{NoStreaming: true}, 1)
	c := serveFanOut(t, s)
	w, err := c.WatchTargets(t.Context(), &knowingnodev1.WatchTargetsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Recv(); status.Code(err) != codes.Unimplemented {
		t.Errorf("WatchTargets with streaming off: %v; want UNIMPLEMENTED", err)
	}
	f, err := c.FanOutStream(t.Context(), &knowingnodev1.FanOutStreamRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Recv(); status.Code(err) != codes.Unimplemented {
		t.Errorf("FanOutStream with streaming off: %v; want UNIMPLEMENTED", err)
	}
}

// heldBackend is a backend whose calls wait until release is closed.
func heldBackend(t *testing.T, release <-chan struct{}) *testBackend {
	return startBackend(t, "held", "node-h", grpc.UnaryInterceptor(func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		select {
		case <-release:
		case <-ctx.Done():
			return nil, status.FromContextError(ctx.Err()).Err()
		}
		return h(ctx, req)
	}))
}

func TestFanOutStreamSendsResultsAsTheyCome(t *testing.T) {
	release := make(chan struct{})
	bs := append(startBackends(t, 2), heldBackend(t, release))
	s, _ := newService(t, Options{MaxFanOuts: 1}, addrs(bs)...)
	c := serveFanOut(t, s)
	stream, err := c.FanOutStream(t.Context(), &knowingnodev1.FanOutStreamRequest{})
	if err != nil {
		t.Fatal(err)
	}
	// Two results come while the third backend still holds its call.
	got := map[string]bool{}
	for range 2 {
		m, err := stream.Recv()
		if err != nil {
			t.Fatal(err)
		}
		if m.GetResult().GetCode() != "OK" {
			t.Fatalf("result %v; want OK", m)
		}
		got[m.GetResult().GetIdentity().GetPodName()] = true
	}
	if !got["backend-0"] || !got["backend-1"] {
		t.Fatalf("first results from %v; want backend-0 and backend-1", got)
	}
	// Same admission control as FanOut: the running stream holds the one slot.
	if _, err := s.FanOut(t.Context(), &knowingnodev1.FanOutRequest{}); status.Code(err) != codes.ResourceExhausted {
		t.Errorf("a fan-out beside the stream: %v; want RESOURCE_EXHAUSTED (max-fanouts 1)", err)
	}
	close(release)
	m, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if m.GetResult().GetIdentity().GetPodName() != "held" {
		t.Fatalf("third message %v; want the held backend's result", m)
	}
	m, err = stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	done := m.GetDone()
	if done == nil || done.GetSummary().GetOk() != 3 || len(done.GetResults()) != 0 || done.GetDiscovery().GetName() != "backends" {
		t.Fatalf("last message %v; want the summary of 3 OK calls, no results again", m)
	}
	if _, err := stream.Recv(); err == nil || !strings.Contains(err.Error(), "EOF") {
		t.Errorf("after the summary: %v; want the end of the stream", err)
	}
}

func TestFanOutStreamBalancedAndErrors(t *testing.T) {
	bs := startBackends(t, 2)
	s, _ := newService(t, Options{}, addrs(bs)...)
	c := serveFanOut(t, s)
	stream, err := c.FanOutStream(t.Context(), &knowingnodev1.FanOutStreamRequest{Mode: knowingnodev1.FanOutMode_FAN_OUT_MODE_BALANCED, Count: 10})
	if err != nil {
		t.Fatal(err)
	}
	calls := int32(0)
	for {
		m, err := stream.Recv()
		if err != nil {
			t.Fatal(err)
		}
		if d := m.GetDone(); d != nil {
			if d.GetSummary().GetTotal() != 10 || calls != 10 {
				t.Errorf("summary total %d, streamed calls %d; want 10 and 10", d.GetSummary().GetTotal(), calls)
			}
			break
		}
		calls += m.GetResult().GetCalls()
	}
	bad, err := c.FanOutStream(t.Context(), &knowingnodev1.FanOutStreamRequest{Count: -1})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bad.Recv(); status.Code(err) != codes.InvalidArgument {
		t.Errorf("count -1: %v; want INVALID_ARGUMENT as FanOut answers", err)
	}
}
