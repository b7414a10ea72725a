package dist

import (
	"fmt"
	"testing"
	"time"

	knowingnodev1 "github.com/knowingnode/knowingnode/gen/knowingnode/v1"
	"github.com/knowingnode/knowingnode/internal/load/engine"
)

// The coordinator's cost of one merged window of 10 workers, each having
// called 50 pods 1,000 times in the window: decoding the 10 histograms and
// counts, and merging them. cpu-ns/op is its CPU per merged window.
func BenchmarkMergeWindow10x50(b *testing.B) {
	const workers, pods, calls = 10, 50, 1000
	wire := make([]*knowingnodev1.WorkerWindow, workers)
	for w := range workers {
		s := &engine.Stats{Length: time.Second, Sent: calls, OK: calls, ByCode: map[string]int64{"OK": calls},
			ByPod: map[string]int64{}, ByNode: map[string]int64{}, PodNode: map[string]string{}, Hist: newHist()}
		for i := range calls {
			pod := fmt.Sprintf("backend-%d", i%pods)
			s.ByPod[pod]++
			s.ByNode[fmt.Sprintf("node-%d", i%pods%5)]++
			s.PodNode[pod] = fmt.Sprintf("node-%d", i%pods%5)
			s.Hist.RecordValue(int64(200 + (i*7919+w*104729)%20000))
		}
		ww, err := encodeWindow(0, s, 0.5, 2)
		if err != nil {
			b.Fatal(err)
		}
		wire[w] = ww
	}
	cfg := Config{Workers: workers, Grace: time.Second, Engine: engine.Config{Rate: 10000, Window: time.Second, Duration: time.Duration(b.N+1) * time.Second}}
	st := newState(cfg, time.Now(), workers)
	for i := range workers {
		share, _ := Split(cfg.Engine.Rate, i, workers)
		st.workers[i] = &workerState{share: share, parts: map[int]part{}}
	}
	b.ReportAllocs()
	b.ResetTimer()
	// This machine's cores are shared: the process's CPU time per window
	// is the figure, beside the wall-clock ns/op.
	cpu0 := cpuTime()
	var merged int
	for k := range b.N {
		for i, ww := range wire {
			ww.Index = int32(k)
			st.receive(event{w: i, window: ww})
		}
		ws := st.emit(time.Time{})
		merged += len(ws)
		st.merged = st.merged[:0] // the summary's list is not what is measured
	}
	b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N), "cpu-ns/op")
	if merged != b.N {
		b.Fatalf("merged %d windows of %d", merged, b.N)
	}
}
