package main

import (
	"fmt"
	"image/png"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/knowingnode/knowingnode/internal/load/engine"
)

// bin/load's memory does not grow with the run: with --plot it keeps a
// bounded series, without it no window at all. The old reporter kept every
// window, about 3.4 kB each at 20 pods.
func TestReporterMemoryIsBounded(t *testing.T) {
	heap := func() uint64 {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	window := func(k int) *engine.Stats {
		w := &engine.Stats{Start: time.Unix(int64(k), 0), Elapsed: time.Duration(k+1) * time.Second, Length: time.Second,
			Sent: 200, OK: 200, ByCode: map[string]int64{"OK": 200}, ByPod: map[string]int64{}, ByNode: map[string]int64{}, PodNode: map[string]string{}}
		for i := range 20 {
			pod := fmt.Sprintf("pod-%d", i)
			w.ByPod[pod], w.ByNode[fmt.Sprintf("node-%d", i%3)], w.PodNode[pod] = 10, 10, fmt.Sprintf("node-%d", i%3)
		}
		return w
	}
	for _, plot := range []bool{false, true} {
		o := &options{call: "identity"}
		if plot {
			o.plotFile = filepath.Join(t.TempDir(), "run.png")
		}
		r, err := newReporter(o, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		for k := range 2000 {
			r.window(window(k))
		}
		h0 := heap()
		for k := range 20000 {
			r.window(window(2000 + k))
		}
		h1 := heap()
		t.Logf("plot %v: live heap %d kB after 2,000 windows, %d kB after 22,000", plot, h0>>10, h1>>10)
		if h1 > h0+1<<20 {
			t.Errorf("plot %v: live heap grew by %d kB over 20,000 windows", plot, (h1-h0)>>10)
		}
		if err := r.close(window(0)); err != nil {
			t.Fatal(err)
		}
		if plot {
			f, err := os.Open(o.plotFile)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := png.Decode(f); err != nil {
				t.Errorf("--plot: %v", err)
			}
			f.Close()
		}
	}
}
