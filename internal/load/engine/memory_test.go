package engine

import (
	"fmt"
	"runtime"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
)

// A window costs its counts, not a new 194 kB histogram: over many windows
// of 20 pods each, allocation per window stays small and the live heap flat.
func TestWindowsReuseTheirHistogram(t *testing.T) {
	start := time.Now()
	rec := newRecorder(start, false)
	pods := make([]Result, 20)
	for i := range pods {
		pods[i] = Result{Pod: fmt.Sprintf("pod-%d", i), Node: fmt.Sprintf("node-%d", i%3)}
	}
	window := func(k int) {
		for i := range 200 {
			rec.sent(false)
			rec.done(time.Duration(100+i)*time.Microsecond, pods[i%len(pods)], codes.OK)
		}
		_ = rec.closeWindow(start.Add(time.Duration(k+1) * time.Second))
	}
	heap := func() uint64 {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	for k := range 100 {
		window(k)
	}
	h0 := heap()
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	const n = 2000
	for k := range n {
		window(100 + k)
	}
	runtime.ReadMemStats(&m1)
	h1 := heap()
	perWindow := (m1.TotalAlloc - m0.TotalAlloc) / n
	t.Logf("allocated %d B per window; live heap %d -> %d kB", perWindow, h0>>10, h1>>10)
	if perWindow > 32<<10 {
		t.Errorf("each window allocates %d B: a new histogram per window?", perWindow)
	}
	if h1 > h0+1<<20 {
		t.Errorf("live heap grew from %d to %d kB over %d windows", h0>>10, h1>>10, n)
	}
}
