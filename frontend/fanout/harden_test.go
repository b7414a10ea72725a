package fanout

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	knowingnodev1 "github.com/knowingnode/knowingnode/gen/knowingnode/v1"
	"github.com/knowingnode/knowingnode/internal/discovery"
)

var balancedReq = func(count int32) *knowingnodev1.FanOutRequest {
	return &knowingnodev1.FanOutRequest{Mode: knowingnodev1.FanOutMode_FAN_OUT_MODE_BALANCED, Count: count}
}

// Closing the Service while fan-outs run never panics: those running end,
// and any FanOut during or after Close is refused cleanly. (Before, Close
// closed the channel that backend calls are handed over on: "send on closed
// channel".)
func TestCloseWhileFanOutsRun(t *testing.T) {
	bs := startBackends(t, 3)
	s, _ := newService(t, Options{}, addrs(bs)...)
	var (
		wg       sync.WaitGroup
		ok, shut atomic.Int64
		started  = make(chan struct{})
		once     sync.Once
	)
	for range 8 {
		wg.Go(func() {
			for {
				_, err := s.FanOut(t.Context(), balancedReq(50))
				once.Do(func() { close(started) })
				switch st := status.Convert(err); {
				case err == nil:
					ok.Add(1)
				case st.Code() == codes.Unavailable && strings.Contains(st.Message(), "shutting down"):
					shut.Add(1)
					return
				default:
					t.Errorf("FanOut while closing: %v", err)
					return
				}
			}
		})
	}
	<-started
	if err := s.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	_, err := s.FanOut(t.Context(), &knowingnodev1.FanOutRequest{})
	if st := status.Convert(err); st.Code() != codes.Unavailable || !strings.Contains(st.Message(), "shutting down") {
		t.Errorf("FanOut after Close: %v; want UNAVAILABLE shutting down", err)
	}
	t.Logf("%d fan-outs completed, %d refused as shutting down", ok.Load(), shut.Load())
}

// With the frontend's default limits, a flood of the most expensive request
// is partly refused at once, not queued; the refusals name the limit and are
// counted.
func TestAdmissionRefusesFlood(t *testing.T) {
	bs := startBackends(t, 3)
	reg := prometheus.NewRegistry()
	m, err := NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	// The frontend's defaults (frontend/main.go).
	s, _ := newService(t, Options{Concurrency: 64, MaxFanOuts: 32, MaxBackendCalls: 256, Metrics: m}, addrs(bs)...)
	waitReady(t, s.targets["backends"].pool)
	const flood = 20
	var (
		wg      sync.WaitGroup
		go_     = make(chan struct{})
		mu      sync.Mutex
		refused []time.Duration
		took    []time.Duration
		msgs    = map[string]bool{}
	)
	for range flood {
		wg.Go(func() {
			<-go_
			start := time.Now()
			// Those accepted are cut at 2s: what matters is the refusals.
			req := balancedReq(MaxCount)
			req.Timeout = durationpb.New(2 * time.Second)
			_, err := s.FanOut(t.Context(), req)
			d := time.Since(start)
			mu.Lock()
			defer mu.Unlock()
			switch st := status.Convert(err); st.Code() {
			case codes.OK:
				took = append(took, d)
			case codes.ResourceExhausted:
				refused = append(refused, d)
				msgs[st.Message()] = true
			default:
				t.Errorf("fan-out: %v", err)
			}
		})
	}
	close(go_)
	wg.Wait()
	t.Logf("%d of %d BALANCED count=%d fan-outs accepted (took %v), %d refused (after %v)", len(took), flood, MaxCount, took, len(refused), refused)
	if len(refused) == 0 || len(took) == 0 {
		t.Fatalf("accepted %d, refused %d; want some of each", len(took), len(refused))
	}
	for msg := range msgs {
		if !strings.Contains(msg, "max-backend-calls") && !strings.Contains(msg, "max-fanouts") {
			t.Errorf("refusal %q does not name its limit", msg)
		}
	}
	// Refused at once: faster than any accepted fan-out of 10000 calls.
	slowestRefusal, fastestAccepted := refused[0], took[0]
	for _, d := range refused {
		slowestRefusal = max(slowestRefusal, d)
	}
	for _, d := range took {
		fastestAccepted = min(fastestAccepted, d)
	}
	if slowestRefusal >= fastestAccepted {
		t.Errorf("slowest refusal took %v, fastest accepted fan-out %v: refusals must not queue", slowestRefusal, fastestAccepted)
	}
	if got := counterSum(t, reg, "knowingnode_fanout_refused_total"); got != float64(len(refused)) {
		t.Errorf("knowingnode_fanout_refused_total = %v, want %d", got, len(refused))
	}
	// Once the flood is over, the budget is whole again.
	if _, err := s.FanOut(t.Context(), balancedReq(100)); err != nil {
		t.Errorf("after the flood: %v", err)
	}
}

func TestAdmissionLimits(t *testing.T) {
	for _, c := range []struct {
		name string
		o    Options
		want string
	}{
		{"fan-outs", Options{MaxFanOuts: 1}, "too many fan-outs: 1 already running, the limit (max-fanouts)"},
		{"calls", Options{Concurrency: 3, MaxBackendCalls: 4}, "this fan-out needs 3 more and the limit (max-backend-calls) is 4"},
	} {
		t.Run(c.name, func(t *testing.T) {
			bs := startBackends(t, 2)
			started, release := make(chan struct{}, 1), make(chan struct{})
			slow := startBackend(t, "slow", "node-c", grpc.UnaryInterceptor(func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
				select {
				case started <- struct{}{}:
				default:
				}
				<-release
				return h(ctx, req)
			}))
			s, _ := newService(t, c.o, append(addrs(bs), slow.addr)...)
			done := make(chan error)
			go func() {
				_, err := s.FanOut(context.Background(), &knowingnodev1.FanOutRequest{})
				done <- err
			}()
			<-started // the first fan-out holds its admission until released
			_, err := s.FanOut(t.Context(), &knowingnodev1.FanOutRequest{})
			close(release)
			if st := status.Convert(err); st.Code() != codes.ResourceExhausted || !strings.Contains(st.Message(), c.want) {
				t.Errorf("second fan-out: %v; want RESOURCE_EXHAUSTED %q", err, c.want)
			}
			if err := <-done; err != nil {
				t.Error(err)
			}
		})
	}
}

// BALANCED quantiles are over every call: with latencies spread over 0-20ms
// and one call of 100ms, p99 is below the max (one latency per address, as
// before, gave p99 = max).
func TestBalancedQuantilesOverEveryCall(t *testing.T) {
	var n atomic.Int64
	spread := grpc.UnaryInterceptor(func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		i := n.Add(1)
		d := time.Duration(i%100) * 200 * time.Microsecond
		if i == 150 {
			d = 100 * time.Millisecond
		}
		time.Sleep(d)
		return h(ctx, req)
	})
	var as []string
	for i := range 3 {
		as = append(as, startBackend(t, fmt.Sprintf("b-%d", i), "node-a", spread).addr)
	}
	s, _ := newService(t, Options{}, as...)
	waitReady(t, s.targets["backends"].pool)
	n.Store(0)
	resp, err := s.FanOut(t.Context(), balancedReq(300))
	if err != nil {
		t.Fatal(err)
	}
	sum := resp.Summary
	p50, p99, mx := sum.LatencyP50.AsDuration(), sum.LatencyP99.AsDuration(), sum.LatencyMax.AsDuration()
	t.Logf("count=300: min %v p50 %v p99 %v max %v", sum.LatencyMin.AsDuration(), p50, p99, mx)
	if sum.Ok != 300 {
		t.Fatalf("summary %v", sum)
	}
	if mx < 100*time.Millisecond || p99 >= mx || p50 >= p99 || p50 < 5*time.Millisecond {
		t.Errorf("p50 %v p99 %v max %v; want p50 (≈10ms) < p99 < max (≥100ms)", p50, p99, mx)
	}
}

// Unknown mode numbers from requests do not mint metric series.
func TestUnknownModesMintNoSeries(t *testing.T) {
	bs := startBackends(t, 1)
	reg := prometheus.NewRegistry()
	m, err := NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	s, _ := newService(t, Options{Metrics: m}, addrs(bs)...)
	s.FanOut(t.Context(), &knowingnodev1.FanOutRequest{Mode: 3}) // the "unknown" series exist
	before := seriesCount(t, reg)
	for i := range 1000 {
		if _, err := s.FanOut(t.Context(), &knowingnodev1.FanOutRequest{Mode: knowingnodev1.FanOutMode(4 + i)}); status.Code(err) != codes.InvalidArgument {
			t.Fatalf("mode %d: %v", 4+i, err)
		}
	}
	after := seriesCount(t, reg)
	t.Logf("series: %d before, %d after 1000 unknown modes", before, after)
	if after != before {
		t.Errorf("1000 unknown modes took the series from %d to %d", before, after)
	}
}

// A pod's series is deleted when its address leaves discovery.
func TestPodSeriesLeaveWithDiscovery(t *testing.T) {
	bs := startBackends(t, 3)
	reg := prometheus.NewRegistry()
	m, err := NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	s, _ := newService(t, Options{Metrics: m}, addrs(bs)...)
	pool := s.targets["backends"].pool
	waitReady(t, pool)
	for _, req := range []*knowingnodev1.FanOutRequest{{}, balancedReq(30)} {
		if _, err := s.FanOut(t.Context(), req); err != nil {
			t.Fatal(err)
		}
	}
	pods := func() map[string]int {
		out := map[string]int{}
		for _, l := range seriesLabels(t, reg, "knowingnode_fanout_backend_pod_calls_total") {
			out[l["pod"]]++
		}
		return out
	}
	if got := pods(); len(got) != 3 || got["backend-2"] != 2 {
		t.Fatalf("pod series %v; want 3 pods × EACH and BALANCED", got)
	}
	pool.Update([]discovery.Endpoint{{Addr: bs[0].addr}, {Addr: bs[1].addr}})
	if got := pods(); len(got) != 2 || got["backend-2"] != 0 {
		t.Errorf("after backend-2 left discovery, pod series %v; want backend-0 and backend-1 only", got)
	}
	if _, err := s.FanOut(t.Context(), &knowingnodev1.FanOutRequest{}); err != nil {
		t.Fatal(err)
	}
	if got := pods(); got["backend-2"] != 0 {
		t.Errorf("a gone pod's series came back: %v", got)
	}
}

// A backend whose health turns NOT_SERVING (as on SIGTERM, for the drain
// delay) is reported as draining by EACH, not as a failure, and BALANCED
// stops picking it.
func TestDrainingBackend(t *testing.T) {
	bs := startBackends(t, 2)
	drainer := startBackend(t, "drainer", "node-c")
	s, _ := newService(t, Options{}, append(addrs(bs), drainer.addr)...)
	waitReady(t, s.targets["backends"].pool)
	if resp, err := s.FanOut(t.Context(), balancedReq(30)); err != nil || resp.Summary.ByPod["drainer"] == 0 {
		t.Fatalf("before the drain, BALANCED: %v %v; want calls on the drainer too", err, resp.GetSummary())
	}

	flipped := time.Now()
	drainer.health.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
	// The channels learn it from their health watch, at once but not
	// synchronously: wait for the first EACH that sees it.
	var each *knowingnodev1.FanOutResponse
	for {
		resp, err := s.FanOut(t.Context(), &knowingnodev1.FanOutRequest{})
		if err != nil {
			t.Fatal(err)
		}
		if resp.Results[2].Code != "OK" {
			each = resp
			break
		}
		if time.Since(flipped) > 10*time.Second {
			t.Fatal("EACH still calls the drainer 10s after it turned NOT_SERVING")
		}
		time.Sleep(time.Millisecond)
	}
	t.Logf("EACH saw the drain %v after NOT_SERVING", time.Since(flipped))
	if r := each.Results[2]; r.Code != CodeDraining || r.Identity != nil || !strings.Contains(r.Message, "draining") {
		t.Errorf("drainer's result %v; want code DRAINING", r)
	}
	if sum := each.Summary; sum.Failed != 0 || sum.Draining != 1 || sum.Ok != 2 || sum.Total != 3 {
		t.Errorf("EACH summary ok/failed/draining/total %d/%d/%d/%d, want 2/0/1/3", sum.Ok, sum.Failed, sum.Draining, sum.Total)
	}

	for {
		resp, err := s.FanOut(t.Context(), balancedReq(30))
		if err != nil {
			t.Fatal(err)
		}
		if resp.Summary.ByPod["drainer"] == 0 {
			break
		}
		if time.Since(flipped) > 10*time.Second {
			t.Fatal("BALANCED still picks the drainer 10s after it turned NOT_SERVING")
		}
	}
	resp, err := s.FanOut(t.Context(), balancedReq(300))
	if err != nil {
		t.Fatal(err)
	}
	if sum := resp.Summary; sum.Ok != 300 || sum.ByPod["drainer"] != 0 {
		t.Errorf("BALANCED after the drain: %v; want 300 OK calls, none on the drainer", sum)
	}

	// Every pod draining: BALANCED reports its calls as draining too.
	for _, b := range bs {
		b.srv.Stop()
	}
	s.targets["backends"].pool.Update([]discovery.Endpoint{{Addr: drainer.addr}})
	resp, err = s.FanOut(t.Context(), balancedReq(10))
	if err != nil {
		t.Fatal(err)
	}
	if sum := resp.Summary; sum.Draining != 10 || sum.Failed != 0 {
		t.Errorf("BALANCED over draining pods only: %v; want 10 draining", sum)
	}
}

func counterSum(t *testing.T, g prometheus.Gatherer, name string) float64 {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() == name {
			for _, m := range mf.GetMetric() {
				sum += m.GetCounter().GetValue()
			}
		}
	}
	return sum
}

func seriesCount(t *testing.T, g prometheus.Gatherer) int {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, mf := range mfs {
		n += len(mf.GetMetric())
	}
	return n
}

func seriesLabels(t *testing.T, g prometheus.Gatherer, name string) []map[string]string {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var out []map[string]string
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			l := map[string]string{}
			for _, lp := range m.GetLabel() {
				l[lp.GetName()] = lp.GetValue()
			}
			out = append(out, l)
		}
	}
	return out
}

// Close closes the connections of vanished endpoints still in their grace,
// and a refresh that races the teardown (Update after Close) dials nothing.
func TestPoolCloseIsFinal(t *testing.T) {
	bs := startBackends(t, 2)
	p, err := NewPool("t", time.Hour, slog.New(slog.DiscardHandler), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	p.Update([]discovery.Endpoint{{Addr: bs[0].addr}, {Addr: bs[1].addr}})
	gone := p.Backends()[1].cc
	p.Update([]discovery.Endpoint{{Addr: bs[0].addr}}) // bs[1] in its hour of grace
	p.Close()
	if st := gone.GetState(); st != connectivity.Shutdown {
		t.Errorf("a vanished endpoint's connection is %v after Close, want Shutdown", st)
	}
	p.Update([]discovery.Endpoint{{Addr: bs[0].addr}, {Addr: bs[1].addr}})
	if n := len(p.Backends()); n != 0 {
		t.Errorf("Update after Close dialed %d backends, want none", n)
	}
}
