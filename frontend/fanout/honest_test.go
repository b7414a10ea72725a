package fanout

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/knowingnode/knowingnode/backend/fault"
	knowingnodev1 "github.com/knowingnode/knowingnode/gen/knowingnode/v1"
)

// slowBackends starts n backends that each take at least d to answer.
func slowBackends(t *testing.T, n int, d time.Duration) []string {
	var as []string
	for i := range n {
		as = append(as, startBackend(t, fmt.Sprintf("slow-%d", i), "node-a",
			grpc.UnaryInterceptor(fault.Interceptor(fault.Config{Latency: d}, nil))).addr)
	}
	return as
}

// The probe of issue 22, finding 4: 4 backends at 300 ms, concurrency 1, a
// 500 ms fan-out. The backends whose turn never came are NOT_SENT, outside
// the quantiles; the quantiles are over the calls made, each of which took
// a good part of 300 ms (the second one is cut by the deadline after ~200
// ms). The old code gave min = 0 and p50 = 27 µs.
func TestNeverSentCallsAreNoLatencySamples(t *testing.T) {
	s, _ := newService(t, Options{Concurrency: 1}, slowBackends(t, 4, 300*time.Millisecond)...)
	waitReady(t, s.targets["backends"].pool)
	resp, err := s.FanOut(t.Context(), &knowingnodev1.FanOutRequest{Timeout: durationpb.New(500 * time.Millisecond)})
	if err != nil {
		t.Fatal(err)
	}
	sum := resp.Summary
	t.Logf("summary: total %d ok %d failed %d not sent %d; min %v p50 %v p99 %v max %v", sum.Total, sum.Ok, sum.Failed, sum.NotSent,
		sum.LatencyMin.AsDuration(), sum.LatencyP50.AsDuration(), sum.LatencyP99.AsDuration(), sum.LatencyMax.AsDuration())
	if sum.NotSent < 2 || sum.ByCode[CodeNotSent] != sum.NotSent || sum.Total != sum.Ok+sum.Failed+sum.Draining+sum.NotSent {
		t.Errorf("summary %v; want at least the last 2 backends NOT_SENT, counted apart", sum)
	}
	// Generous floor: every call made took tens of milliseconds at least.
	const floor = 10 * time.Millisecond
	if sum.LatencyMin.AsDuration() < floor || sum.LatencyP50.AsDuration() < floor {
		t.Errorf("min %v p50 %v: calls never made entered the quantiles", sum.LatencyMin.AsDuration(), sum.LatencyP50.AsDuration())
	}
	for _, r := range resp.Results {
		if r.Code == CodeNotSent {
			if r.Latency != nil || r.Message == "" || r.Calls != 1 {
				t.Errorf("never-sent result %v; want no latency, a message and calls 1", r)
			}
		} else if r.Latency.AsDuration() < floor {
			t.Errorf("result %v: a call made in %v; a call started after the deadline?", r, r.Latency.AsDuration())
		}
	}
}

// No call starts after the fan-out's deadline: 10 backends at 300 ms,
// concurrency 1, 500 ms: at most 2 calls can start in time. The old code
// picked at random between the freed slot and the deadline, and started a
// call that failed at once for about half the remaining backends.
func TestNoCallStartsAfterTheDeadline(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	defer tp.Shutdown(context.Background())
	s, _ := newService(t, Options{Concurrency: 1, Tracer: tp.Tracer("fanout")}, slowBackends(t, 10, 300*time.Millisecond)...)
	waitReady(t, s.targets["backends"].pool)
	exp.Reset()
	resp, err := s.FanOut(t.Context(), &knowingnodev1.FanOutRequest{Timeout: durationpb.New(500 * time.Millisecond)})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("summary %v", resp.Summary)
	made := 0
	for _, sp := range exp.GetSpans() {
		if sp.Name == "fanout.backend" {
			made++
		}
	}
	if made > 2 || int(resp.Summary.NotSent) != 10-made {
		t.Errorf("%d backend calls started, %d not sent; want at most 2 started (the rest after the deadline) and the rest NOT_SENT", made, resp.Summary.NotSent)
	}
}

// Every BALANCED call is one observation of the latency histogram, so its
// count agrees with backend_calls_total (the old code observed one per group).
func TestBalancedHistogramObservesEveryCall(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	s, _ := newService(t, Options{Metrics: m}, addrs(startBackends(t, 3))...)
	waitReady(t, s.targets["backends"].pool)
	if _, err := s.FanOut(t.Context(), balancedReq(100)); err != nil {
		t.Fatal(err)
	}
	calls := counterSum(t, reg, "knowingnode_fanout_backend_calls_total")
	if n := histogramCount(t, reg, "knowingnode_fanout_backend_call_duration_seconds"); n != 100 || calls != 100 {
		t.Errorf("histogram count %d, backend_calls_total %v; want 100 each", n, calls)
	}
}

func histogramCount(t *testing.T, g prometheus.Gatherer, name string) uint64 {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var n uint64
	for _, mf := range mfs {
		if mf.GetName() == name {
			for _, m := range mf.GetMetric() {
				n += m.GetHistogram().GetSampleCount()
			}
		}
	}
	return n
}

// A fan-out without a mode is labelled EACH whether it fails or succeeds
// (the old code said UNSPECIFIED on failure).
func TestModeLabelIsNormalisedFirst(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	s, _ := newService(t, Options{Metrics: m}, addrs(startBackends(t, 1))...)
	if _, err := s.FanOut(t.Context(), &knowingnodev1.FanOutRequest{}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.FanOut(t.Context(), &knowingnodev1.FanOutRequest{Count: MaxCount + 1}); err == nil {
		t.Fatal("count over the limit accepted")
	}
	for _, l := range seriesLabels(t, reg, "knowingnode_fanout_requests_total") {
		if l["mode"] != "EACH" {
			t.Errorf("series %v; want mode EACH for fan-outs that set no mode", l)
		}
	}
}

// reconnectingVIP is a ClusterIP in front of pod a, whose server switches
// the VIP to pod b and stops gracefully (GOAWAY: the client reconnects
// through the VIP, to b) on its after-th call.
func reconnectingVIP(t *testing.T, after int64) (addr string) {
	b := startBackend(t, "pod-b", "node-b")
	var to atomic.Pointer[string]
	var n atomic.Int64
	var a *testBackend
	a = startBackend(t, "pod-a", "node-a", grpc.UnaryInterceptor(
		func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			if n.Add(1) == after {
				to.Store(&b.addr)
				go a.srv.GracefulStop()
			}
			return h(ctx, req)
		}))
	to.Store(&a.addr)
	return vip(t, &to)
}

// BALANCED over a VIP groups calls by the pod that answered: a fan-out
// during which the connection moves from pod a to pod b reports both (the
// old code gave every call to the group's first pod).
func TestBalancedGroupsByPodAcrossAReconnection(t *testing.T) {
	s, _ := newService(t, Options{Concurrency: 1}, reconnectingVIP(t, 10))
	resp, err := s.FanOut(t.Context(), balancedReq(40))
	if err != nil {
		t.Fatal(err)
	}
	perPod := map[string]int32{}
	for _, r := range resp.Results {
		if r.Identity != nil {
			perPod[r.Identity.PodName] += r.Calls
		}
	}
	t.Logf("by pod %v, by code %v", resp.Summary.ByPod, resp.Summary.ByCode)
	if perPod["pod-a"] < 9 || perPod["pod-b"] == 0 || resp.Summary.ByPod["pod-b"] != perPod["pod-b"] {
		t.Errorf("calls per pod in the results %v, in the summary %v; want both pods, as they answered", perPod, resp.Summary.ByPod)
	}
}

// Behind a ClusterIP (one address), a reconnection that reaches another pod
// keeps the previous pod's pod_calls series: it goes only when the address
// leaves discovery, as the metric's help says.
func TestPodSeriesSurviveAReconnectionBehindAVIP(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	s, _ := newService(t, Options{Metrics: m}, reconnectingVIP(t, 1))
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := s.FanOut(t.Context(), &knowingnodev1.FanOutRequest{})
		if err != nil {
			t.Fatal(err)
		}
		if resp.Results[0].GetIdentity().GetPodName() == "pod-b" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("10s on, EACH through the VIP still does not reach pod b")
		}
		time.Sleep(10 * time.Millisecond)
	}
	pods := map[string]bool{}
	for _, l := range seriesLabels(t, reg, "knowingnode_fanout_backend_pod_calls_total") {
		pods[l["pod"]] = true
	}
	if !pods["pod-a"] || !pods["pod-b"] {
		t.Errorf("pod series %v; want pod-a's kept beside pod-b's while the VIP is discovered", pods)
	}
	s.targets["backends"].pool.Update(nil)
	if n := len(seriesLabels(t, reg, "knowingnode_fanout_backend_pod_calls_total")); n != 0 {
		t.Errorf("%d pod series left after the VIP left discovery; want none", n)
	}
}
