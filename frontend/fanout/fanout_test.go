package fanout

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/knowingnode/knowingnode/backend/fault"
	knowingnodev1 "github.com/knowingnode/knowingnode/gen/knowingnode/v1"
	"github.com/knowingnode/knowingnode/internal/discovery"
	"github.com/knowingnode/knowingnode/internal/identity"
)

// testBackend is a real gRPC server on loopback serving an identity.
type testBackend struct {
	addr   string
	srv    *grpc.Server
	health *health.Server // SERVING until a test says otherwise, as in the backend binary
}

func startBackend(tb testing.TB, pod, node string, opts ...grpc.ServerOption) *testBackend {
	tb.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	return startIdentity(tb, lis, &knowingnodev1.Identity{
		PodName: pod, NodeName: node, PodIp: "127.0.0.1", Tier: knowingnodev1.Tier_TIER_BACKEND,
	}, opts...)
}

// startIdentity serves id on lis as a backend does.
func startIdentity(tb testing.TB, lis net.Listener, id *knowingnodev1.Identity, opts ...grpc.ServerOption) *testBackend {
	return startIdentityServer(tb, lis, identity.NewServer(id), opts...)
}

func startIdentityServer(tb testing.TB, lis net.Listener, is *identity.Server, opts ...grpc.ServerOption) *testBackend {
	srv := grpc.NewServer(opts...)
	knowingnodev1.RegisterIdentityServiceServer(srv, is)
	hs := health.NewServer()
	healthpb.RegisterHealthServer(srv, hs)
	go srv.Serve(lis)
	tb.Cleanup(srv.Stop)
	return &testBackend{addr: lis.Addr().String(), srv: srv, health: hs}
}

func startBackends(tb testing.TB, n int) []*testBackend {
	var bs []*testBackend
	for i := range n {
		bs = append(bs, startBackend(tb, fmt.Sprintf("backend-%d", i), fmt.Sprintf("node-%c", 'a'+i%2)))
	}
	return bs
}

// newService wires a Service over a static target of the backends' addresses,
// exactly as the frontend binary does.
func newService(tb testing.TB, o Options, addrs ...string) (*Service, *discovery.Target) {
	tb.Helper()
	spec, err := discovery.ParseTarget("backends=static:///" + strings.Join(addrs, ","))
	if err != nil {
		tb.Fatal(err)
	}
	return newServiceSpec(tb, o, spec)
}

func newServiceSpec(tb testing.TB, o Options, spec discovery.Spec) (*Service, *discovery.Target) {
	tb.Helper()
	if o.BackendTimeout == 0 {
		o.BackendTimeout = 2 * time.Second
	}
	if o.DefaultTimeout == 0 {
		o.DefaultTimeout = 5 * time.Second
	}
	if o.Concurrency == 0 {
		o.Concurrency = 64
	}
	pool, err := NewPool(spec.Name, o.BackendTimeout, slog.New(slog.DiscardHandler), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(pool.Close)
	t := discovery.NewTarget(spec, discovery.NewResolver(discovery.NetLookuper(spec.Server)), discovery.TargetOptions{
		Interval: time.Hour, OnUpdate: pool.Update,
	})
	t.Refresh(context.Background())
	s := New(&knowingnodev1.Identity{PodName: "frontend-0", Tier: knowingnodev1.Tier_TIER_FRONTEND}, o)
	tb.Cleanup(func() {
		if err := s.Close(context.Background()); err != nil {
			tb.Error(err)
		}
	})
	if err := s.Add(t, pool); err != nil {
		tb.Fatal(err)
	}
	return s, t
}

func addrs(bs []*testBackend) []string {
	var out []string
	for _, b := range bs {
		out = append(out, b.addr)
	}
	return out
}

func TestFanOutEachReachesEveryBackend(t *testing.T) {
	bs := startBackends(t, 3)
	s, _ := newService(t, Options{}, addrs(bs)...)
	resp, err := s.FanOut(t.Context(), &knowingnodev1.FanOutRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if got := resp.GetFrontend().GetPodName(); got != "frontend-0" {
		t.Errorf("frontend identity: pod %q, want frontend-0", got)
	}
	if resp.Mode != knowingnodev1.FanOutMode_FAN_OUT_MODE_EACH {
		t.Errorf("mode %v, want EACH for an unspecified mode", resp.Mode)
	}
	pods := map[string]bool{}
	for i, r := range resp.Results {
		if r.Code != "OK" || r.Identity == nil {
			t.Fatalf("result %d: code %s message %q", i, r.Code, r.Message)
		}
		if r.Address != bs[i].addr {
			t.Errorf("result %d: address %s, want %s (discovery order)", i, r.Address, bs[i].addr)
		}
		pods[r.Identity.PodName] = true
	}
	if len(pods) != 3 {
		t.Errorf("distinct pods %v, want 3", pods)
	}
	sum := resp.Summary
	if sum.Total != 3 || sum.Ok != 3 || sum.Failed != 0 {
		t.Errorf("summary total/ok/failed = %d/%d/%d, want 3/3/0", sum.Total, sum.Ok, sum.Failed)
	}
	if sum.ByNode["node-a"] != 2 || sum.ByNode["node-b"] != 1 {
		t.Errorf("by node %v, want node-a:2 node-b:1", sum.ByNode)
	}
	if sum.LatencyMin.AsDuration() > sum.LatencyP50.AsDuration() || sum.LatencyP50.AsDuration() > sum.LatencyMax.AsDuration() {
		t.Errorf("latency quantiles out of order: %v", sum)
	}
	if n := len(resp.Discovery.GetEndpoints()); n != 3 {
		t.Errorf("discovery shows %d endpoints, want 3", n)
	}
}

func TestFanOutPartialFailures(t *testing.T) {
	bs := startBackends(t, 3)
	slow := startBackend(t, "slow", "node-c", grpc.UnaryInterceptor(fault.Interceptor(fault.Config{Latency: time.Minute}, nil)))
	bs[1].srv.Stop() // killed: connection refused
	s, _ := newService(t, Options{BackendTimeout: 2 * time.Second}, append(addrs(bs), slow.addr)...)

	resp, err := s.FanOut(t.Context(), &knowingnodev1.FanOutRequest{Mode: knowingnodev1.FanOutMode_FAN_OUT_MODE_EACH})
	if err != nil {
		t.Fatalf("a fan-out with some failed backends must not fail as a whole: %v", err)
	}
	want := []string{"OK", "UNAVAILABLE", "OK", "DEADLINE_EXCEEDED"}
	for i, r := range resp.Results {
		if r.Code != want[i] {
			t.Errorf("result %d (%s): code %s (%q), want %s", i, r.Address, r.Code, r.Message, want[i])
		}
		if r.Code != "OK" && (r.Identity != nil || r.Message == "") {
			t.Errorf("failed result %d: identity %v message %q; want no identity and a message", i, r.Identity, r.Message)
		}
	}
	if resp.Summary.Ok != 2 || resp.Summary.Failed != 2 || resp.Summary.ByCode["UNAVAILABLE"] != 1 {
		t.Errorf("summary %v", resp.Summary)
	}
}

func TestFanOutBalancedSpreadsEvenly(t *testing.T) {
	bs := startBackends(t, 3)
	s, _ := newService(t, Options{}, addrs(bs)...)
	// Let the balanced channel connect to every endpoint first: before that,
	// round robin only has the pods already connected to pick from.
	waitReady(t, s.targets["backends"].pool)
	const count = 300
	resp, err := s.FanOut(t.Context(), &knowingnodev1.FanOutRequest{Mode: knowingnodev1.FanOutMode_FAN_OUT_MODE_BALANCED, Count: count})
	if err != nil {
		t.Fatal(err)
	}
	if resp.Summary.Total != count || resp.Summary.Ok != count {
		t.Fatalf("summary %v, want %d OK calls", resp.Summary, count)
	}
	even := float64(count) / 3
	for pod, n := range resp.Summary.ByPod {
		if float64(n) < 0.8*even || float64(n) > 1.2*even {
			t.Errorf("pod %s got %d of %d calls; want within ±20%% of %.0f (spread %v)", pod, n, count, even, resp.Summary.ByPod)
		}
	}
	if len(resp.Summary.ByPod) != 3 {
		t.Errorf("calls reached %d pods, want 3: %v", len(resp.Summary.ByPod), resp.Summary.ByPod)
	}
	var calls int32
	for _, r := range resp.Results {
		calls += r.Calls
	}
	if calls != count {
		t.Errorf("results account for %d calls, want %d", calls, count)
	}
}

func waitReady(t testing.TB, p *Pool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	// Every endpoint answering through the balanced channel means every
	// subchannel is ready.
	seen := map[string]bool{}
	for len(seen) < len(p.Backends()) {
		resp, err := p.Balanced().GetIdentity(ctx, &knowingnodev1.GetIdentityRequest{}, grpc.WaitForReady(true))
		if err != nil {
			t.Fatalf("balanced channel never reached every backend (saw %v): %v", seen, err)
		}
		seen[resp.GetIdentity().GetPodName()] = true
	}
}

func TestFanOutBadInput(t *testing.T) {
	bs := startBackends(t, 1)
	s, _ := newService(t, Options{}, addrs(bs)...)
	cases := []struct {
		name string
		req  *knowingnodev1.FanOutRequest
		code codes.Code
		msg  string
	}{
		{"unknown target", &knowingnodev1.FanOutRequest{Target: "nope"}, codes.NotFound, "configured targets: backends"},
		{"count negative", &knowingnodev1.FanOutRequest{Mode: knowingnodev1.FanOutMode_FAN_OUT_MODE_BALANCED, Count: -1}, codes.InvalidArgument, "want 0..10000"},
		{"count too large", &knowingnodev1.FanOutRequest{Count: MaxCount + 1}, codes.InvalidArgument, "want 0..10000"},
		{"timeout zero", &knowingnodev1.FanOutRequest{Timeout: durationpb.New(0)}, codes.InvalidArgument, "at most 1m0s"},
		{"timeout too long", &knowingnodev1.FanOutRequest{Timeout: durationpb.New(2 * time.Minute)}, codes.InvalidArgument, "at most 1m0s"},
		{"unknown mode", &knowingnodev1.FanOutRequest{Mode: 7}, codes.InvalidArgument, "EACH or BALANCED"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := s.FanOut(t.Context(), c.req)
			st := status.Convert(err)
			if st.Code() != c.code || !strings.Contains(st.Message(), c.msg) {
				t.Errorf("got %v %q, want %v containing %q", st.Code(), st.Message(), c.code, c.msg)
			}
		})
	}
}

func TestFanOutNothingDiscovered(t *testing.T) {
	// A DNS server that is not there: the lookup fails at once (connection
	// refused), so discovery has no endpoints and an error to report.
	lis, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := lis.LocalAddr().String()
	lis.Close()
	spec, err := discovery.ParseTarget("gone=dns://" + dead + "/backend.default.svc.cluster.local:9090")
	if err != nil {
		t.Fatal(err)
	}
	s, _ := newServiceSpec(t, Options{}, spec)
	_, err = s.FanOut(t.Context(), &knowingnodev1.FanOutRequest{})
	st := status.Convert(err)
	if st.Code() != codes.Unavailable || !strings.Contains(st.Message(), "no endpoints discovered") || !strings.Contains(st.Message(), "backend.default.svc.cluster.local") {
		t.Errorf("got %v %q; want UNAVAILABLE naming the query and the discovery error", st.Code(), st.Message())
	}
}

func TestPoolReconciles(t *testing.T) {
	bs := startBackends(t, 3)
	p, err := NewPool("t", 0, slog.New(slog.DiscardHandler), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	eps := func(bs ...*testBackend) []discovery.Endpoint {
		var out []discovery.Endpoint
		for _, b := range bs {
			out = append(out, discovery.Endpoint{Addr: b.addr})
		}
		return out
	}
	p.Update(eps(bs[0], bs[1]))
	first := p.Backends()
	p.Update(eps(bs[1], bs[2]))
	second := p.Backends()
	if len(second) != 2 || second[0].ep.Addr != bs[1].addr || second[1].ep.Addr != bs[2].addr {
		t.Fatalf("backends after update: %v", second)
	}
	if second[0].cc != first[1].cc {
		t.Error("a kept endpoint was redialed; want its connection reused")
	}
	// Closed after the grace (0 here), not before.
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	for st := first[0].cc.GetState(); st != connectivity.Shutdown; st = first[0].cc.GetState() {
		if !first[0].cc.WaitForStateChange(ctx, st) {
			t.Fatalf("vanished endpoint's connection is %v, want Shutdown", st)
		}
	}
	p.Update(append(eps(bs[1]), eps(bs[1])...))
	if n := len(p.Backends()); n != 1 {
		t.Errorf("duplicate addresses gave %d backends, want 1", n)
	}
}

// BALANCED behaves like a client with a retry policy: a call that meets
// UNAVAILABLE is tried again on another pick, so a pod failing that way
// costs few calls, while EACH, which calls every pod once, reports it.
func TestFanOutBalancedRetriesUnavailable(t *testing.T) {
	bs := startBackends(t, 2)
	failing := startBackend(t, "failing", "node-c", grpc.UnaryInterceptor(fault.Interceptor(
		fault.Config{ErrorRate: 1, ErrorCode: codes.Unavailable}, nil)))
	s, _ := newService(t, Options{}, append(addrs(bs), failing.addr)...)
	waitReadyN(t, s.targets["backends"].pool, 2)

	const count = 300
	resp, err := s.FanOut(t.Context(), &knowingnodev1.FanOutRequest{Mode: knowingnodev1.FanOutMode_FAN_OUT_MODE_BALANCED, Count: count})
	if err != nil {
		t.Fatal(err)
	}
	// Without retries a third of the calls would fail; with up to three
	// attempts a call fails only if every attempt lands on the failing pod.
	if failed := resp.Summary.ByCode["UNAVAILABLE"]; failed > count/10 || resp.Summary.Ok < count*9/10 {
		t.Errorf("BALANCED: %d of %d calls UNAVAILABLE, %d ok; want retries to keep failures under 10%%", failed, count, resp.Summary.Ok)
	}
	each, err := s.FanOut(t.Context(), &knowingnodev1.FanOutRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if each.Summary.ByCode["UNAVAILABLE"] != 1 || each.Results[2].Code != "UNAVAILABLE" {
		t.Errorf("EACH must report the failing pod: %v", each.Summary.ByCode)
	}
}

// waitReadyN waits until n distinct pods answered through the balanced
// channel.
func waitReadyN(t *testing.T, p *Pool, n int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	seen := map[string]bool{}
	for len(seen) < n {
		resp, err := p.Balanced().GetIdentity(ctx, &knowingnodev1.GetIdentityRequest{}, grpc.WaitForReady(true))
		if ctx.Err() != nil {
			t.Fatalf("balanced channel reached only %v", seen)
		}
		if err == nil {
			seen[resp.GetIdentity().GetPodName()] = true
		}
	}
}

// A backend that vanishes from discovery while a fan-out is calling it still
// answers that call: its connection is closed only after the grace.
func TestVanishedEndpointFinishesItsCall(t *testing.T) {
	fast := startBackend(t, "fast", "node-a")
	started := make(chan struct{}, 1)
	signal := func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		select {
		case started <- struct{}{}:
		default:
		}
		return h(ctx, req)
	}
	slow := startBackend(t, "slow", "node-b", grpc.ChainUnaryInterceptor(signal,
		fault.Interceptor(fault.Config{Latency: 500 * time.Millisecond}, nil)))
	s, _ := newService(t, Options{}, fast.addr, slow.addr)
	pool := s.targets["backends"].pool
	done := make(chan *knowingnodev1.FanOutResponse)
	go func() {
		resp, err := s.FanOut(context.Background(), &knowingnodev1.FanOutRequest{})
		if err != nil {
			t.Error(err)
		}
		done <- resp
	}()
	<-started // the slow call is in flight: now discovery drops its endpoint
	pool.Update([]discovery.Endpoint{{Addr: fast.addr}})
	resp := <-done
	if resp == nil {
		return
	}
	for _, r := range resp.Results {
		if r.Code != "OK" {
			t.Errorf("%s: %s %q; a call already made must finish when its endpoint vanishes", r.Address, r.Code, r.Message)
		}
	}
}

// One fan-out is one log line at the default level, however many backends
// it calls, and the line summarises it.
func TestFanOutLogsOneLine(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo}))
	bs := startBackends(t, 3)
	s, _ := newService(t, Options{Logger: log}, addrs(bs)...)
	buf.Reset() // discovery's own lines
	if _, err := s.FanOut(t.Context(), &knowingnodev1.FanOutRequest{}); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 1 {
		t.Fatalf("%d log lines for one fan-out over 3 backends, want 1:\n%s", len(lines), buf.String())
	}
	var line struct {
		Msg, Target, Mode string
		Backends, Ok      int
	}
	if err := json.Unmarshal([]byte(lines[0]), &line); err != nil {
		t.Fatal(err)
	}
	if line.Msg != "fan-out" || line.Target != "backends" || line.Mode != "EACH" || line.Backends != 3 || line.Ok != 3 {
		t.Errorf("log line %s", lines[0])
	}
}
