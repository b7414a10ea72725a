package engine_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/knowingnode/knowingnode/internal/load/engine"
)

func noop(context.Context) (engine.Result, error) { return engine.Result{Pod: "p"}, nil }

// 3 calls/s for 2 s is 6 calls, and the run lasts the 2 s asked; the old
// token-bucket pacer sent 5 and ended at 1.67 s. 1/s for 1 s sends its one
// call.
func TestOpenLoopSendsEveryScheduledCall(t *testing.T) {
	for _, tc := range []struct {
		rate float64
		d    time.Duration
		want int64
	}{
		{3, 2 * time.Second, 6},
		{1, time.Second, 1},
		{3, 1500 * time.Millisecond, 5},
	} {
		start := time.Now()
		sum, err := engine.Run(t.Context(), engine.Config{Rate: tc.rate, Concurrency: 4, Duration: tc.d}, noop, nil)
		took := time.Since(start)
		if err != nil {
			t.Fatal(err)
		}
		if sum.Sent != tc.want || sum.OK != tc.want || sum.Dropped != 0 {
			t.Errorf("%g/s for %v: sent %d ok %d dropped %d, want %d sent", tc.rate, tc.d, sum.Sent, sum.OK, sum.Dropped, tc.want)
		}
		if took < tc.d || sum.Length != tc.d {
			t.Errorf("%g/s for %v: ran %v, summary length %v; want the duration asked", tc.rate, tc.d, took, sum.Length)
		}
	}
}

// Every scheduled call is either sent or counted as dropped, and dropped
// calls are no latency samples: a call that takes 100 ms with one worker
// cannot carry 100/s.
func TestDroppedCallsAreCountedNotTimed(t *testing.T) {
	var made atomic.Int64
	slow := func(ctx context.Context) (engine.Result, error) {
		made.Add(1)
		select {
		case <-time.After(100 * time.Millisecond):
		case <-ctx.Done():
		}
		return engine.Result{Pod: "p"}, nil
	}
	sum, err := engine.Run(t.Context(), engine.Config{Rate: 100, Concurrency: 1, Duration: time.Second}, slow, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("sent %d late %d dropped %d latency %+v", sum.Sent, sum.Late, sum.Dropped, sum.Latency)
	if sum.Sent+sum.Dropped != 100 {
		t.Errorf("sent %d + dropped %d, want the 100 scheduled", sum.Sent, sum.Dropped)
	}
	if sum.Dropped < 50 || sum.Sent != made.Load() || sum.OK != sum.Sent {
		t.Errorf("sent %d (made %d, ok %d), dropped %d; want most dropped, every sent call made and timed", sum.Sent, made.Load(), sum.OK, sum.Dropped)
	}
	// Only calls made are timed: each took at least 100 ms.
	if sum.Latency.P50 < 100*time.Millisecond {
		t.Errorf("p50 %v, below the 100 ms every call made took: a dropped call was timed", sum.Latency.P50)
	}
}

// The phase delays the first call and the end by the same amount.
func TestOpenLoopPhase(t *testing.T) {
	var mu sync.Mutex
	var first time.Time
	call := func(context.Context) (engine.Result, error) {
		mu.Lock()
		if first.IsZero() {
			first = time.Now()
		}
		mu.Unlock()
		return engine.Result{}, nil
	}
	start := time.Now()
	sum, err := engine.Run(t.Context(), engine.Config{Rate: 10, Phase: 80 * time.Millisecond, Concurrency: 2, Duration: 300 * time.Millisecond}, call, nil)
	if err != nil {
		t.Fatal(err)
	}
	if d := first.Sub(start); d < 80*time.Millisecond {
		t.Errorf("first call %v after the start, want at least the 80ms phase", d)
	}
	if sum.Sent != 3 {
		t.Errorf("sent %d, want 3 (80, 180, 280 ms)", sum.Sent)
	}
}

// A call refused because its backend is draining is neither ok nor failed,
// is named DRAINING, and is no latency sample.
func TestDrainingIsNotAFailure(t *testing.T) {
	var n atomic.Int64
	call := func(context.Context) (engine.Result, error) {
		if n.Add(1)%2 == 0 {
			return engine.Result{}, fmt.Errorf("backend-1: %w", engine.ErrDraining)
		}
		return engine.Result{Pod: "p"}, nil
	}
	sum, err := engine.Run(t.Context(), engine.Config{Concurrency: 1, Count: 10}, call, nil)
	if err != nil {
		t.Fatal(err)
	}
	if sum.OK != 5 || sum.Draining != 5 || sum.Failed != 0 || sum.ByCode["DRAINING"] != 5 || sum.ByCode["UNAVAILABLE"] != 0 {
		t.Errorf("ok %d draining %d failed %d codes %v; want 5 ok, 5 DRAINING, none failed", sum.OK, sum.Draining, sum.Failed, sum.ByCode)
	}
}

func TestConfigValidatePhase(t *testing.T) {
	for _, c := range []engine.Config{
		{Rate: 1, Phase: -time.Second, Concurrency: 1, Duration: time.Second},
		{Phase: time.Second, Concurrency: 1, Duration: time.Second},
	} {
		if err := c.Validate(); err == nil {
			t.Errorf("%+v: no error", c)
		}
	}
}

// With a count and a duration, whichever comes first ends the run: 5 calls
// at 20/s end it after about 200 ms, not 10 s.
func TestOpenLoopCountBeforeDuration(t *testing.T) {
	start := time.Now()
	sum, err := engine.Run(t.Context(), engine.Config{Rate: 20, Concurrency: 2, Duration: 10 * time.Second, Count: 5}, noop, nil)
	if err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); sum.Sent+sum.Dropped != 5 || took > 5*time.Second {
		t.Errorf("sent %d + dropped %d in %v; want the 5 counted, well before the 10 s duration", sum.Sent, sum.Dropped, took)
	}
}
