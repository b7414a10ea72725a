package fanout

import (
	"fmt"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	knowingnodev1 "github.com/knowingnode/knowingnode/gen/knowingnode/v1"
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
			s, _ := newService(b, Options{Metrics: m}, addrs(startBackends(b, n))...)
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
// the number of backends: allocations per backend at 100 backends must stay
// within 25% of those at 10.
func TestFanOutCostPerBackendIsFlat(t *testing.T) {
	if testing.Short() {
		t.Skip("starts 110 backends")
	}
	perBackend := func(n int) float64 {
		// It counts allocations, not time: the timeouts are generous, so a
		// loaded machine (100 backends in one -race process) cannot make a
		// call miss its deadline.
		s, _ := newService(t, Options{BackendTimeout: MaxTimeout, DefaultTimeout: MaxTimeout}, addrs(startBackends(t, n))...)
		req := &knowingnodev1.FanOutRequest{}
		if _, err := s.FanOut(t.Context(), req); err != nil {
			t.Fatal(err)
		}
		return testing.AllocsPerRun(20, func() {
			if resp, err := s.FanOut(t.Context(), req); err != nil || resp.Summary.Ok != int32(n) {
				t.Fatalf("fan-out over %d: %v %v", n, err, resp.GetResults())
			}
		}) / float64(n)
	}
	small, large := perBackend(10), perBackend(100)
	t.Logf("allocs per backend: %.1f at 10 backends, %.1f at 100", small, large)
	if large > 1.25*small {
		t.Errorf("allocs per backend grow with N: %.1f at 10, %.1f at 100", small, large)
	}
}
