package fanout

import (
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/encoding"
	grpcproto "google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/knowingnode/knowingnode/backend/loadreport"
	knowingnodev1 "github.com/knowingnode/knowingnode/gen/knowingnode/v1"
	"github.com/knowingnode/knowingnode/internal/identity"
)

// BenchmarkFanOutEach measures one EACH fan-out over N real loopback
// backends, metrics on as in the binary; ns/backend and allocs/backend
// should stay flat as N grows, up to the 1,000 endpoints a static target
// takes.
func BenchmarkFanOutEach(b *testing.B) {
	for _, n := range []int{1, 10, 100, 1000} {
		b.Run(fmt.Sprintf("backends=%d", n), func(b *testing.B) {
			m, err := NewMetrics(prometheus.NewRegistry())
			if err != nil {
				b.Fatal(err)
			}
			s, _ := newService(b, Options{Metrics: m}, addrs(startPods(b, n))...)
			req := &knowingnodev1.FanOutRequest{}
			if _, err := s.FanOut(b.Context(), req); err != nil { // connect first
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				resp, err := s.FanOut(b.Context(), req)
				if err != nil || resp.Summary.Ok != int32(n) {
					b.Fatalf("fan-out: %v, summary %v", err, resp.GetSummary())
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/backend")
		})
	}
}

// TestFanOutCostPerBackendIsFlat guards against work that grows faster than
// the number of backends: allocations per backend at 1,000 backends (100
// under the race detector, which cannot run 1,000) must stay within 25% of
// those at 10.
func TestFanOutCostPerBackendIsFlat(t *testing.T) {
	if testing.Short() {
		t.Skip("starts up to 1,010 backends")
	}
	wide := 1000
	if raceEnabled {
		wide = 100
	}
	perBackend := func(n int) float64 {
		// It counts allocations, not time: the timeouts are generous, so a
		// loaded machine cannot make a call miss its deadline.
		s, _ := newService(t, Options{BackendTimeout: MaxTimeout, DefaultTimeout: MaxTimeout}, addrs(startPods(t, n))...)
		req := &knowingnodev1.FanOutRequest{}
		if _, err := s.FanOut(t.Context(), req); err != nil {
			t.Fatal(err)
		}
		return testing.AllocsPerRun(10, func() {
			if resp, err := s.FanOut(t.Context(), req); err != nil || resp.Summary.Ok != int32(n) {
				t.Fatalf("fan-out over %d: %v %v", n, err, resp.GetSummary())
			}
		}) / float64(n)
	}
	small, large := perBackend(10), perBackend(wide)
	t.Logf("allocs per backend: %.1f at 10 backends, %.1f at %d", small, large, wide)
	if large > 1.25*small {
		t.Errorf("allocs per backend grow with N: %.1f at 10, %.1f at %d", small, large, wide)
	}
}

// startPods starts n backends whose identities are as full as a real pod's
// with the Downward API volume mounted (labels, annotations, build, sources),
// served with opts:
// decoding such an identity is part of what a fan-out costs per backend.
// Like the backend (internal/serve's CacheReply), they send their reply
// encoded once.
func startPods(tb testing.TB, n int, opts ...grpc.ServerOption) []*testBackend {
	var bs []*testBackend
	for i := range n {
		lis, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			tb.Fatal(err)
		}
		srv := identity.NewServer(podIdentity(i))
		raw, err := proto.MarshalOptions{Deterministic: true}.Marshal(srv.Response())
		if err != nil {
			tb.Fatal(err)
		}
		bs = append(bs, startIdentityServer(tb, lis, srv, append(opts, grpc.ForceServerCodecV2(encodedOnce{
			CodecV2: encoding.GetCodecV2(grpcproto.Name), reply: srv.Response(), raw: raw}))...))
	}
	return bs
}

func podIdentity(i int) *knowingnodev1.Identity {
	pod := fmt.Sprintf("backend-7d9f8c6b5-%05d", i)
	return &knowingnodev1.Identity{
		PodName: pod, PodNamespace: "knowingnode", PodIp: "10.244.1.17", PodIps: []string{"10.244.1.17", "fd00::17"},
		PodUid: "3f2c9a4e-8b1d-4c6f-9e2a-5d7b0c1e4f3a", NodeName: fmt.Sprintf("node-%d", i%3), NodeIp: "192.168.0.12",
		ServiceAccount: "backend", Hostname: pod, Tier: knowingnodev1.Tier_TIER_BACKEND,
		Labels: map[string]string{"app.kubernetes.io/name": "backend", "app.kubernetes.io/part-of": "knowingnode",
			"app.kubernetes.io/version": "0.4.0", "pod-template-hash": "7d9f8c6b5"},
		Annotations:        map[string]string{"kubernetes.io/config.seen": "2026-11-30T04:00:00Z", "kubernetes.io/config.source": "api"},
		CpuLimitMillicores: 500, MemoryLimitBytes: 64 << 20,
		StartTime:        timestamppb.New(time.Date(2026, 11, 30, 4, 0, 0, 0, time.UTC)),
		Build:            &knowingnodev1.BuildInfo{Version: "0.4.0", Revision: "11385db", GoVersion: "go1.26.8"},
		ServingAddresses: []string{"grpc=0.0.0.0:9090", "admin=0.0.0.0:9091"},
		Sources: map[string]knowingnodev1.Source{"pod_name": knowingnodev1.Source_SOURCE_DOWNWARD_API,
			"node_name": knowingnodev1.Source_SOURCE_DOWNWARD_API, "labels": knowingnodev1.Source_SOURCE_DOWNWARD_API,
			"annotations": knowingnodev1.Source_SOURCE_DOWNWARD_API, "hostname": knowingnodev1.Source_SOURCE_FALLBACK},
	}
}

// encodedOnce sends raw for reply, as internal/serve's reply cache does.
type encodedOnce struct {
	encoding.CodecV2
	reply *knowingnodev1.GetIdentityResponse
	raw   []byte
}

func (c encodedOnce) Marshal(v any) (mem.BufferSlice, error) {
	if v == c.reply {
		return mem.BufferSlice{mem.SliceBuffer(c.raw)}, nil
	}
	return c.CodecV2.Marshal(v)
}

// BenchmarkFanOutBalanced measures one BALANCED fan-out of count calls over
// N real loopback backends that report their load with ORCA in each call's
// trailer, as the backend binary does; ns/call and allocs/call are per
// backend call.
//
// Without a policy it is round robin, as before there were policies; the
// other policies run over 10 backends.
func BenchmarkFanOutBalanced(b *testing.B) {
	keys := make([]string, 100)
	for i := range keys {
		keys[i] = fmt.Sprintf("key-%d", i)
	}
	for _, c := range []struct {
		backends, count int
		policy          string
	}{{3, 100, ""}, {10, 1000, ""}, {10, 1000, "pick_first"}, {10, 1000, "weighted_round_robin"}, {10, 1000, "least_request"}, {10, 1000, "ring_hash"}} {
		name := fmt.Sprintf("backends=%d/count=%d", c.backends, c.count)
		if c.policy != "" {
			name = "policy=" + c.policy + "/" + name
		}
		b.Run(name, func(b *testing.B) {
			m, err := NewMetrics(prometheus.NewRegistry())
			if err != nil {
				b.Fatal(err)
			}
			s, _ := newService(b, Options{Metrics: m, WRR: WRR{Blackout: time.Second}}, addrs(startReportingPods(b, c.backends))...)
			req := &knowingnodev1.FanOutRequest{Mode: knowingnodev1.FanOutMode_FAN_OUT_MODE_BALANCED, Count: int32(c.count), Policy: c.policy}
			if c.policy == "ring_hash" {
				req.HashKeys = keys // 100 keys, each call one
			}
			waitReady(b, s.targets["backends"].pool)
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				resp, err := s.FanOut(b.Context(), req)
				if err != nil || resp.Summary.Ok != int32(c.count) {
					b.Fatalf("fan-out: %v, summary %v", err, resp.GetSummary())
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(c.count), "ns/call")
		})
	}
}

// startReportingPods is startPods with each backend reporting its load
// (ORCA) per call, as the backend binary does by default. Pod i claims a
// capacity of 100(i+1) calls/s, so that weighted_round_robin's weights are
// steady and differ: in one process every pod reports the same CPU
// utilization, and weights of rate/CPU would pile the calls onto one pod.
func startReportingPods(tb testing.TB, n int) []*testBackend {
	var bs []*testBackend
	for i := range n {
		lis, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			tb.Fatal(err)
		}
		rep := loadreport.New(loadreport.Config{Interval: 100 * time.Millisecond, Capacity: float64(100 * (i + 1))})
		tb.Cleanup(rep.Close)
		bs = append(bs, startIdentityServer(tb, lis, identity.NewServer(podIdentity(i)), rep.ServerOptions()...))
	}
	return bs
}
