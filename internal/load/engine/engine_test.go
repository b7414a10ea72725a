package engine_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/resolver/manual"

	"github.com/knowingnode/knowingnode/harness/proc"
	"github.com/knowingnode/knowingnode/internal/load/calls"
	"github.com/knowingnode/knowingnode/internal/load/engine"
)

// startBackends runs n real backends, backend-0..n-1 on nodes node-0..n-1,
// with extra flags, and returns them with their gRPC addresses.
func startBackends(t *testing.T, n int, extra ...string) ([]*proc.Process, []string) {
	t.Helper()
	dir := proc.Build(t, "../../../backend")
	var ps []*proc.Process
	var addrs []string
	for i := range n {
		p := proc.Start(t, dir+"/backend", []string{
			fmt.Sprintf("POD_NAME=backend-%d", i), fmt.Sprintf("NODE_NAME=node-%d", i), "DRAIN_DELAY=0s",
		}, append([]string{"--grpc-addr", "127.0.0.1:0", "--admin-addr", "", "--downward-dir", ""}, extra...)...)
		t.Cleanup(func() { p.Stop(t) })
		ps = append(ps, p)
		addrs = append(addrs, p.Addrs["grpc"])
	}
	return ps, addrs
}

// roundRobin is one client over addrs with gRPC's round_robin balancer.
func roundRobin(t *testing.T, addrs []string) *grpc.ClientConn {
	t.Helper()
	r := manual.NewBuilderWithScheme("loadtest")
	var st resolver.State
	for _, a := range addrs {
		st.Addresses = append(st.Addresses, resolver.Address{Addr: a})
	}
	r.InitialState(st)
	cc, err := grpc.NewClient(r.Scheme()+":///backends", grpc.WithResolvers(r),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultServiceConfig(`{"loadBalancingConfig":[{"round_robin":{}}]}`))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return cc
}

// pinned is one pick-first client per address.
func pinned(t *testing.T, addrs []string) []grpc.ClientConnInterface {
	t.Helper()
	var ccs []grpc.ClientConnInterface
	for _, a := range addrs {
		cc, err := grpc.NewClient("passthrough:///"+a, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cc.Close() })
		ccs = append(ccs, cc)
	}
	return ccs
}

// windows collects the windows of a run.
type windows struct {
	mu sync.Mutex
	ws []*engine.Stats
}

func (w *windows) add(s *engine.Stats) { w.mu.Lock(); w.ws = append(w.ws, s); w.mu.Unlock() }

func TestOpenLoopRateAndEvenShares(t *testing.T) {
	_, addrs := startBackends(t, 3)
	cc := roundRobin(t, addrs)
	const rate, dur = 200.0, 3 * time.Second
	var ws windows
	sum, err := engine.Run(t.Context(), engine.Config{Rate: rate, Concurrency: 16, Duration: dur, Warmup: 300 * time.Millisecond}, calls.Identity(cc), ws.add)
	if err != nil {
		t.Fatal(err)
	}
	want := rate * dur.Seconds()
	t.Logf("sent %d of %g (%.3f), rate %.1f/s, late %d, dropped %d, latency %+v", sum.Sent, want, float64(sum.Sent)/want, sum.Rate, sum.Late, sum.Dropped, sum.Latency)
	if r := float64(sum.Sent) / want; r < 0.85 || r > 1.05 {
		t.Errorf("sent %d calls, %.2f of the %g requested", sum.Sent, r, want)
	}
	if r := sum.Rate / rate; r < 0.85 || r > 1.05 {
		t.Errorf("achieved rate %.1f/s, %.2f of the requested %g", sum.Rate, r, rate)
	}
	if sum.OK != sum.Sent || sum.Failed != 0 {
		t.Errorf("ok %d failed %d of %d sent; want all ok (codes %v)", sum.OK, sum.Failed, sum.Sent, sum.ByCode)
	}
	if len(sum.ByPod) != 3 || len(sum.ByNode) != 3 {
		t.Fatalf("pods %v nodes %v, want 3 each", sum.ByPod, sum.ByNode)
	}
	for pod, n := range sum.ByPod {
		if share := float64(n) / float64(sum.OK); share < 0.25 || share > 0.42 {
			t.Errorf("pod %s took %.2f of the calls, want about 1/3 (%v)", pod, share, sum.ByPod)
		}
	}
	if sum.Latency.P50 <= 0 || sum.Latency.P50 > sum.Latency.P90 || sum.Latency.P90 > sum.Latency.P99 || sum.Latency.P99 > sum.Latency.Max {
		t.Errorf("latency quantiles not ordered: %+v", sum.Latency)
	}
	// Windows: about one a second, together adding up to the summary.
	if len(ws.ws) < 3 || len(ws.ws) > 4 {
		t.Errorf("%d windows over %v, want 3 or 4", len(ws.ws), dur)
	}
	var sent int64
	for _, w := range ws.ws {
		sent += w.Sent
	}
	if sent != sum.Sent {
		t.Errorf("windows sent %d calls, the summary %d", sent, sum.Sent)
	}
	for _, w := range ws.ws[:len(ws.ws)-1] {
		if r := w.Rate / rate; r < 0.7 || r > 1.3 {
			t.Errorf("window at %v: rate %.1f/s, want about %g", w.Elapsed, w.Rate, rate)
		}
	}
}

func TestClosedLoopCount(t *testing.T) {
	_, addrs := startBackends(t, 1)
	cc := roundRobin(t, addrs)
	sum, err := engine.Run(t.Context(), engine.Config{Concurrency: 4, Count: 300}, calls.Identity(cc), nil)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Sent != 300 || sum.OK != 300 || sum.ByPod["backend-0"] != 300 {
		t.Errorf("sent %d ok %d by pod %v; want 300 calls, all to backend-0", sum.Sent, sum.OK, sum.ByPod)
	}
}

// A backend killed mid-run: its share falls to zero and the calls still
// routed to it (one pinned connection per backend) fail as UNAVAILABLE.
func TestKilledBackendLosesShare(t *testing.T) {
	ps, addrs := startBackends(t, 3)
	conns := pinned(t, addrs)
	var ws windows
	killedAt := make(chan time.Time, 1)
	ctx := t.Context()
	go func() {
		select {
		case <-time.After(1500 * time.Millisecond):
			ps[2].Cmd.Process.Kill()
			killedAt <- time.Now()
		case <-ctx.Done():
		}
	}()
	sum, err := engine.Run(ctx, engine.Config{Rate: 150, Concurrency: 8, Duration: 4 * time.Second, Timeout: time.Second}, calls.Identity(conns...), ws.add)
	if err != nil {
		t.Fatal(err)
	}
	kill := <-killedAt
	var before, after int
	for _, w := range ws.ws {
		end := w.Start.Add(w.Length)
		switch {
		case end.Before(kill):
			before++
			if w.ByPod["backend-2"] == 0 {
				t.Errorf("window at %v before the kill: backend-2 took no calls (%v)", w.Elapsed, w.ByPod)
			}
		case w.Start.After(kill.Add(100 * time.Millisecond)):
			after++
			if w.ByPod["backend-2"] != 0 {
				t.Errorf("window at %v after the kill: backend-2 still took %d calls", w.Elapsed, w.ByPod["backend-2"])
			}
			if share := float64(w.ByCode["UNAVAILABLE"]) / float64(w.Completed()); share < 0.2 || share > 0.45 {
				t.Errorf("window at %v after the kill: UNAVAILABLE is %.2f of the calls, want about 1/3 (%v)", w.Elapsed, share, w.ByCode)
			}
		}
	}
	if before == 0 || after == 0 {
		t.Errorf("%d windows before the kill and %d after; want some of each", before, after)
	}
	if sum.ByCode["UNAVAILABLE"] == 0 || sum.Failed != sum.ByCode["UNAVAILABLE"] {
		t.Errorf("summary codes %v, failed %d; want the failures counted as UNAVAILABLE", sum.ByCode, sum.Failed)
	}
}

// A stalled backend: calls take 200 ms, so 4 workers carry 20 calls/s of the
// 100 asked. The rest cannot be sent on time, and the queueing shows up as
// latency measured from the intended send time.
func TestStalledBackendShowsAsLatencyAndLateCalls(t *testing.T) {
	_, addrs := startBackends(t, 1, "--fault-latency", "200ms")
	cc := roundRobin(t, addrs)
	const rate, dur = 100.0, 2 * time.Second
	sum, err := engine.Run(t.Context(), engine.Config{Rate: rate, Concurrency: 4, Duration: dur}, calls.Identity(cc), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("sent %d late %d dropped %d, latency %+v", sum.Sent, sum.Late, sum.Dropped, sum.Latency)
	want := rate * dur.Seconds()
	if notOnTime := float64(sum.Late + sum.Dropped); notOnTime < 0.5*want {
		t.Errorf("late %d + dropped %d calls of %g, want at least half not sent on time", sum.Late, sum.Dropped, want)
	}
	// Sent calls are bounded by what 4 workers can carry, plus the backlog.
	if float64(sum.Sent) > 0.5*want {
		t.Errorf("sent %d of %g calls to a backend that takes 200ms with 4 workers", sum.Sent, want)
	}
	if sum.Latency.P50 < 250*time.Millisecond {
		t.Errorf("p50 %v: the wait for a worker is missing from the latency (server alone takes 200ms)", sum.Latency.P50)
	}
}

func TestStopsOnContext(t *testing.T) {
	_, addrs := startBackends(t, 1)
	cc := roundRobin(t, addrs)
	// Connect first: the client's own goroutines are not the engine's.
	if _, err := calls.Identity(cc)(t.Context()); err != nil {
		t.Fatal(err)
	}
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	for _, c := range []engine.Config{
		{Rate: 50, Concurrency: 4, Duration: time.Hour},
		{Concurrency: 4, Duration: time.Hour},
	} {
		ctx, cancel := context.WithTimeout(t.Context(), 500*time.Millisecond)
		start := time.Now()
		sum, err := engine.Run(ctx, c, calls.Identity(cc), nil)
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("rate %g: err %v, want the context's", c.Rate, err)
		}
		if took := time.Since(start); took > 10*time.Second {
			t.Errorf("rate %g: Run returned %v after its context ended", c.Rate, took)
		}
		if sum == nil || sum.OK == 0 || sum.Failed != 0 {
			t.Errorf("rate %g: summary %+v; want the calls before the stop, none failed by it", c.Rate, sum)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		c    engine.Config
		want string
	}{
		{engine.Config{Rate: -1, Concurrency: 1, Duration: time.Second}, "rate -1 is outside"},
		{engine.Config{Concurrency: 0, Duration: time.Second}, "concurrency 0 is outside"},
		{engine.Config{Concurrency: 1}, "a duration or a count is required"},
		{engine.Config{Concurrency: 1, Duration: time.Second, Window: time.Millisecond}, "window 1ms is outside"},
	} {
		err := tc.c.Validate()
		if err == nil || !contains(err.Error(), tc.want) {
			t.Errorf("%+v: error %v, want %q", tc.c, err, tc.want)
		}
	}
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }
