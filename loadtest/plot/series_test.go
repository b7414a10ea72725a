package plot

import (
	"bytes"
	"fmt"
	"image/png"
	"math"
	"testing"
	"time"

	"github.com/knowingnode/knowingnode/internal/load/engine"
)

func window(k int, pods int) *engine.Stats {
	w := &engine.Stats{Start: time.Unix(int64(k), 0), Elapsed: time.Duration(k+1) * time.Second, Length: time.Second,
		Sent: 200, OK: 199, Failed: 1, ByPod: map[string]int64{}, BackendByPod: map[string]int64{},
		Latency: engine.Latency{P50: time.Millisecond, P90: 2 * time.Millisecond, P99: 3 * time.Millisecond, Max: 4 * time.Millisecond}}
	for i := range pods {
		w.ByPod[fmt.Sprintf("pod-%d", i)] = 10
	}
	return w
}

// Past MaxPoints windows, points merge in pairs: the count stays bounded,
// the calls add up exactly, and a latency spike in one window survives.
func TestSeriesMergesPastTheBound(t *testing.T) {
	var s Series
	const n = 5000
	for k := range n {
		w := window(k, 20)
		if k == 3333 {
			w.Latency.P99 = time.Second
		}
		s.Add(w)
	}
	ws := s.Windows()
	if len(ws) > MaxPoints || len(ws) < MaxPoints/2 {
		t.Errorf("%d points of %d windows, want %d..%d", len(ws), n, MaxPoints/2, MaxPoints)
	}
	var sent, byPod int64
	var spike bool
	for _, w := range ws {
		sent += w.Sent
		for _, c := range w.ByPod {
			byPod += c
		}
		spike = spike || w.Latency.P99 == time.Second
	}
	if sent != 200*n || byPod != 200*n {
		t.Errorf("points sum to %d sent, %d by pod; want %d each", sent, byPod, 200*n)
	}
	if !spike {
		t.Error("the 1 s p99 of one window is gone from the merged points")
	}
	if last := ws[len(ws)-1]; last.Elapsed != n*time.Second {
		t.Errorf("last point ends at %v, want %v", last.Elapsed, n*time.Second)
	}
	if s.Span() < 4 {
		t.Errorf("span %d after %d windows", s.Span(), n)
	}
	var b bytes.Buffer
	if err := s.WritePNG(&b, window(0, 20), false); err != nil {
		t.Fatal(err)
	}
	if _, err := png.Decode(&b); err != nil {
		t.Error(err)
	}
}

// Names past engine.MaxKeys count under engine.Other, as in the engine.
func TestSeriesBoundsPodNames(t *testing.T) {
	var s Series
	for k := range 600 {
		w := window(k, 0)
		w.ByPod[fmt.Sprintf("pod-%d", k)] = 1
		s.Add(w)
	}
	if n := len(s.pods.list); n != engine.MaxKeys+1 {
		t.Errorf("%d pod names kept, want %d and %q", n, engine.MaxKeys+1, engine.Other)
	}
}

// The pods' load reports reach the load panel through a Series (bin/load
// --plot keeps one): merged points are means weighted by reports.
func TestSeriesKeepsLoadReports(t *testing.T) {
	var s Series
	const n = 3000 // past MaxPoints: points merge
	for k := range n {
		w := window(k, 2)
		util := 0.2
		if k%2 == 1 {
			util = 0.6 // merged pairs: (0.2×1 + 0.6×3) / 4 = 0.5
		}
		w.LoadByPod = map[string]*engine.PodLoad{"pod-1": {Reports: int64(1 + 2*(k%2)), CPUUtilization: util, WeightShare: 0.25}}
		s.Add(w)
	}
	ws := s.Windows()
	if !hasLoad(ws) {
		t.Fatal("no point carries the load reports")
	}
	var reports int64
	for _, w := range ws[:len(ws)-1] {
		l := w.LoadByPod["pod-1"]
		if l == nil || w.LoadByPod["pod-0"] != nil {
			t.Fatalf("point %v: load by pod %v, want pod-1's only", w.Start, w.LoadByPod)
		}
		reports += l.Reports
		if math.Abs(l.CPUUtilization-0.5) > 1e-9 || math.Abs(l.WeightShare-0.25) > 1e-9 {
			t.Errorf("merged point: cpu %.3f weight share %.3f, want 0.5 and 0.25", l.CPUUtilization, l.WeightShare)
		}
	}
	if last := ws[len(ws)-1].LoadByPod["pod-1"]; last != nil {
		reports += last.Reports
	}
	if reports != n*2 {
		t.Errorf("points sum to %d reports, want %d", reports, n*2)
	}
}
