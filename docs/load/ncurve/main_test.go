package main

import (
	"image/png"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// Rows as docs/load/run.sh writes them; the backends' own row of a fan-out
// (", its backends") is not the fan-out's.
const summary = `ghz/wrk c=50 for 10s per row
backend GetIdentity              102681 req    10268 rps  ok 100.0%  CPU   0.366 s/10k  GC/10k    3.9  p50    3.38 ms  p99   12.88 ms  peak RSS  36.5 MB
frontend FanOut EACH N=1          42861 req     4286 rps  ok  99.9%  CPU   1.295 s/10k  GC/10k    7.9  p50    9.10 ms  p99   29.05 ms  peak RSS  73.1 MB
frontend FanOut EACH N=30          2845 req      284 rps  ok  98.2%  CPU  18.278 s/10k  GC/10k   52.7  p50  155.46 ms  p99  392.68 ms  peak RSS 111.7 MB
frontend FanOut EACH N=3          22614 req     2261 rps  ok  99.8%  CPU   2.582 s/10k  GC/10k   13.3  p50   17.67 ms  p99   53.69 ms  peak RSS  76.6 MB
frontend FanOut EACH N=3, its backends 67842 req over 3 rounds  CPU   0.512 s/10k
frontend REST /v1/fanout N=3      39862 req     3971 rps  ok 100.0%  CPU   3.186 s/10k  GC/10k   18.3  p50   11.62 ms  p99   30.96 ms  peak RSS 111.7 MB
frontend fan-out width 10: RSS holding 10 connections 42.7109 MB
frontend FanOut EACH w=10 c=1      2020 req      454 rps  ok 100.0%  CPU  15.198 s/10k  GC/10k   44.6  p50    1.90 ms  p99    5.30 ms  peak RSS  63.1 MB
frontend FanOut EACH w=1000 c=1       40 req        9 rps  ok 100.0%  CPU 1002.500 s/10k  GC/10k  250.0  p50  108.60 ms  p99  151.77 ms  peak RSS 312.3 MB
  backend / podinfo gRPC               1.16x  (goal <= 0.75)
`

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		name, in     string
		backend      float64
		loaded, wide []float64 // N, in order
		err          bool
	}{
		{"run", summary, 0.366, []float64{1, 3, 30}, []float64{10, 1000}, false},
		{"no backend row", strings.Join(strings.Split(summary, "\n")[2:], "\n"), 0, nil, nil, true},
		{"empty", "", 0, nil, nil, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := parse(strings.NewReader(tc.in))
			if tc.err {
				if err == nil {
					t.Fatalf("no error for %q", tc.name)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var loaded, wide []float64
			for _, p := range c.loaded {
				loaded = append(loaded, p.X)
			}
			for _, p := range c.wide {
				wide = append(wide, p.X)
			}
			if c.backend != tc.backend || !slices.Equal(loaded, tc.loaded) || !slices.Equal(wide, tc.wide) {
				t.Errorf("backend %v, N %v, widths %v; want %v, %v, %v", c.backend, loaded, wide, tc.backend, tc.loaded, tc.wide)
			}
			if c.loaded[2].Y != 18.278 {
				t.Errorf("N=30 costs %v, want 18.278", c.loaded[2].Y)
			}
		})
	}
}

func TestDraw(t *testing.T) {
	c, err := parse(strings.NewReader(summary))
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "n.png")
	if err := draw(c, file); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := png.Decode(f); err != nil {
		t.Fatalf("not a PNG: %v", err)
	}
}
