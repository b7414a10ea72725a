package engine

import (
	"math"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
)

// TestLoadByPod: the reports that came with a window's calls become, per
// pod, their means and the pod's share of the weights; failed calls and
// calls without a report add nothing.
func TestLoadByPod(t *testing.T) {
	rec := newRecorder(time.Now(), false)
	for _, l := range []*Load{{CPUUtilization: 0.2, QPS: 100, Weight: 500}, {CPUUtilization: 0.4, QPS: 300, Weight: 700}} {
		rec.done(time.Millisecond, Result{Pod: "a", Load: l}, codes.OK)
	}
	rec.done(time.Millisecond, Result{Pod: "b", Load: &Load{ApplicationUtilization: 0.8, QPS: 160, Weight: 200}}, codes.OK)
	rec.done(time.Millisecond, Result{Pod: "b", Load: &Load{ApplicationUtilization: 9, QPS: 9, Weight: 9}}, codes.Unavailable)
	rec.done(time.Millisecond, Result{Pod: "c"}, codes.OK)
	w := rec.closeWindow(time.Now())
	a, b := w.LoadByPod["a"], w.LoadByPod["b"]
	near := func(x, y float64) bool { return math.Abs(x-y) < 1e-9 }
	if a == nil || a.Reports != 2 || !near(a.CPUUtilization, 0.3) || !near(a.QPS, 200) || !near(a.Weight, 600) || !near(a.WeightShare, 0.75) {
		t.Errorf("a: %+v, want 2 reports, cpu 0.3, qps 200, weight 600 (0.75 of 800)", a)
	}
	if b == nil || b.Reports != 1 || !near(b.ApplicationUtilization, 0.8) || !near(b.WeightShare, 0.25) {
		t.Errorf("b: %+v, want its one good call's report, 0.25 of the weights", b)
	}
	if _, ok := w.LoadByPod["c"]; ok || len(w.LoadByPod) != 2 {
		t.Errorf("LoadByPod %v, want a and b only", w.LoadByPod)
	}
	if next := rec.closeWindow(time.Now()); next.LoadByPod != nil {
		t.Errorf("the next window starts with %v", next.LoadByPod)
	}
}
