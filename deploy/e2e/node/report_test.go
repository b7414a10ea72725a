package node

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/knowingnode/knowingnode/internal/load/report"
)

// writeReport writes the scenario's HTML report beside its PNG (run.html)
// and returns, for the summary line, each new pod's time from Ready (in the
// API, as the tier watch polled it each second) to its first call (the
// start of the first window it answered in: one window's precision), and
// the new pods Ready but never called.
func writeReport(t *testing.T, out, title string, r loadRun, w *tierWatch) string {
	w.mu.Lock()
	tr := report.NewTracker()
	// Replay the watch: at each change, the pods Ready then.
	var times []time.Time
	for _, at := range w.readyAt {
		times = append(times, at)
	}
	for _, at := range w.goneAt {
		times = append(times, at)
	}
	slices.SortFunc(times, time.Time.Compare)
	times = slices.Compact(times)
	for _, at := range times {
		var eps []report.Endpoint
		for _, p := range slices.Sorted(func(yield func(string) bool) {
			for p := range w.readyAt {
				if !yield(p) {
					return
				}
			}
		}) {
			g, gone := w.goneAt[p]
			if !w.readyAt[p].After(at) && (!gone || g.After(at)) {
				eps = append(eps, report.Endpoint{Addr: p, Pod: p, Known: true, Ready: true, Serving: true})
			}
		}
		tr.Observe(at, eps)
	}
	decisions := slices.Clone(w.decisions)
	w.mu.Unlock()
	for _, win := range r.windows {
		for p := range win.ByPod {
			tr.Call(win.Start, "", p, win.PodNode[p], "")
			tr.Call(win.Start.Add(win.Length), "", p, win.PodNode[p], "")
		}
	}
	call := "identity"
	if r.sum != nil && len(r.sum.BackendByPod) > 0 {
		call = "fanout"
	}
	file := filepath.Join(out, "run.html")
	run := report.Run{Title: title, Target: w.workload, Call: call, Discovery: "kubernetes",
		Windows: r.windows, Summary: r.sum, Tracker: tr, Decisions: decisions}
	if err := report.WriteFile(file, run); err != nil {
		t.Errorf("report: %v", err)
		return "no report"
	}
	d, err := report.ReadFile(file)
	if err != nil {
		t.Errorf("report: %v", err)
		return "no report"
	}
	return "Ready→first call " + firstCalls(d, r.end()) + "; report " + file
}

// firstCalls lists each new pod's Ready to first call in a report, or how
// long it stayed uncalled until end.
func firstCalls(d report.Data, end time.Time) string {
	var news []string
	for _, p := range d.Pods {
		switch {
		case !p.New:
		case p.ReadyToFirstCall != nil:
			news = append(news, fmt.Sprintf("%s %.1fs", p.Name, *p.ReadyToFirstCall))
		case p.Ready != nil:
			news = append(news, fmt.Sprintf("%s none in %.0fs", p.Name, end.Sub(d.Start).Seconds()-*p.Ready))
		}
	}
	if len(news) == 0 {
		return "(no new pod)"
	}
	return strings.Join(news, ", ")
}

// loadReport summarizes the report bin/load itself wrote.
func loadReport(t *testing.T, file string, end time.Time) string {
	d, err := report.ReadFile(file)
	if err != nil {
		t.Errorf("bin/load --report: %v", err)
		return "no bin/load report"
	}
	return fmt.Sprintf("bin/load's report: Ready→first call %s, never called %v; %s", firstCalls(d, end), d.NeverCalled, file)
}
