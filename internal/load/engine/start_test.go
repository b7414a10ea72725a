package engine_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/knowingnode/knowingnode/internal/load/engine"
)

// With Start and Phase, a run waits for its absolute start, sends its first
// call no sooner than Start + Phase, lays its windows out from Start, and
// hands out each window's histogram.
func TestStartAndPhase(t *testing.T) {
	start := time.Now().Add(300 * time.Millisecond)
	const phase = 40 * time.Millisecond
	var mu sync.Mutex
	var first time.Time
	call := func(context.Context) (engine.Result, error) {
		mu.Lock()
		if first.IsZero() {
			first = time.Now()
		}
		mu.Unlock()
		return engine.Result{Pod: "p"}, nil
	}
	var windows []*engine.Stats
	sum, err := engine.Run(t.Context(), engine.Config{Rate: 100, Concurrency: 4, Duration: 500 * time.Millisecond, KeepHistograms: true,
		Window: 250 * time.Millisecond, Start: start, Phase: phase}, call, func(s *engine.Stats) { windows = append(windows, s) })
	if err != nil {
		t.Fatal(err)
	}
	if first.Before(start.Add(phase)) {
		t.Errorf("first call %v before start+phase", start.Add(phase).Sub(first))
	}
	if len(windows) == 0 || !windows[0].Start.Equal(start) || !sum.Start.Equal(start) {
		t.Fatalf("windows %d, first from %v, summary from %v; want from %v", len(windows), windows[0].Start, sum.Start, start)
	}
	var hist int64
	for _, w := range windows {
		if w.Hist == nil || w.Hist.TotalCount() != w.Completed() {
			t.Fatalf("window's histogram %v does not hold its %d calls", w.Hist, w.Completed())
		}
		hist += w.Hist.TotalCount()
	}
	if hist != sum.Completed() || sum.Hist.TotalCount() != sum.Completed() {
		t.Errorf("windows' histograms hold %d, summary's %d, completed %d", hist, sum.Hist.TotalCount(), sum.Completed())
	}
	// The schedule holds ceil(100/s x 500 ms) = 50 calls, due at
	// start + phase + j/100 (the phase shifts the run, it does not
	// shorten it); some may be dropped on a busy machine, none added.
	if sum.Sent < 40 || sum.Sent > 50 {
		t.Errorf("sent %d, want about 50", sum.Sent)
	}
	if err := (engine.Config{Rate: 1, Concurrency: 1, Duration: time.Second, Phase: -time.Second}).Validate(); err == nil {
		t.Error("a negative phase is accepted")
	}
}
