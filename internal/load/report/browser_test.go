package report

import (
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/knowingnode/knowingnode/harness/browser"
)

// pageState is what the opened report drew.
type pageState struct {
	Series     []string       `json:"series"` // every chart's series labels
	Charts     int            `json:"charts"`
	Marks      int            `json:"marks"`
	MarkKinds  map[string]int `json:"markKinds"`
	DataMarks  int            `json:"dataMarks"`
	PodRows    int            `json:"podRows"`
	Tables     []string       `json:"tables"`
	NeverNoted bool           `json:"neverNoted"`
	ZoomedMax  float64        `json:"zoomedMax"`
	LaneShift  bool           `json:"laneShift"`
}

const readPageJS = `(async () => {
  const r = window.report;
  const series = [];
  r.charts.forEach(c => c.series.slice(1).forEach(s => series.push(s.label)));
  const kinds = {};
  document.querySelectorAll(".lanes .mark").forEach(m => { kinds[m.dataset.kind] = (kinds[m.dataset.kind] || 0) + 1; });
  let dataMarks = 0;
  r.data.pods.forEach(p => { dataMarks += p.marks.length; });
  const before = document.querySelector(".lanes .mark.kind-first-call[data-pod='backend-2']").style.left;
  r.charts[0].setScale("x", {min: 5, max: 10});
  await new Promise(res => setTimeout(res, 100)); // uPlot commits scales on a later tick
  const after = document.querySelector(".lanes .mark.kind-first-call[data-pod='backend-2']").style.left;
  return {
    series, charts: r.charts.length,
    marks: document.querySelectorAll(".lanes .mark").length, markKinds: kinds, dataMarks,
    podRows: document.querySelectorAll("table[data-table='by pod'] tr").length - 1,
    tables: [...document.querySelectorAll("table")].map(t => t.dataset.table),
    neverNoted: document.body.textContent.includes("Ready but never called: backend-3"),
    zoomedMax: r.charts[r.charts.length - 1].scales.x.max,
    laneShift: before !== after,
  };
})()`

// A report opened from disk, with the network off, draws every series and
// one mark per lifecycle event, logs nothing and requests nothing.
func TestReportOpensOffline(t *testing.T) {
	browser.Path(t, false)
	file := filepath.Join(t.TempDir(), "run.html")
	if err := WriteFile(file, syntheticRun()); err != nil {
		t.Fatal(err)
	}
	br := browser.New(t, false, 2*time.Minute)
	ctx := br.Ctx
	requested := br.Offline(t)
	u := (&url.URL{Scheme: "file", Path: file}).String()
	br.Do(t, "open the report", chromedp.EmulateViewport(1280, 900), chromedp.Navigate(u),
		chromedp.WaitVisible(".lanes .mark"))
	st, err := chromedp.Run(ctx, chromedp.Evaluate[pageState](readPageJS, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("read the page: %v", err)
	}

	for _, want := range []string{"asked", "sent", "ok", "failed", "p50", "p90", "p99", "max",
		"zone-1 / node-a / backend-0", "zone-1 / node-a / backend-2", "zone-2 / node-b / backend-1", "ready", "answering"} {
		if !slices.Contains(st.Series, want) {
			t.Errorf("no series %q in %q", want, st.Series)
		}
	}
	if st.Marks != syntheticMarks || st.DataMarks != syntheticMarks {
		t.Errorf("%d marks drawn (%v), %d in the data; want one per lifecycle event, %d", st.Marks, st.MarkKinds, st.DataMarks, syntheticMarks)
	}
	if st.MarkKinds["first-call"] != 3 || st.MarkKinds["terminating"] != 1 || st.MarkKinds["gone"] != 1 {
		t.Errorf("marks by kind %v; want 3 first calls, 1 terminating, 1 gone", st.MarkKinds)
	}
	if st.PodRows != 4 || !st.NeverNoted {
		t.Errorf("%d rows in the pod table, never-called noted %v; want 4 and true", st.PodRows, st.NeverNoted)
	}
	for _, tb := range []string{"by pod", "by node", "by zone", "by code", "events"} {
		if !slices.Contains(st.Tables, tb) {
			t.Errorf("no table %q in %v", tb, st.Tables)
		}
	}
	if st.ZoomedMax != 10 || !st.LaneShift {
		t.Errorf("zooming the first chart to 5..10 s: last chart's max %v, lifecycle marks moved %v; want 10, true", st.ZoomedMax, st.LaneShift)
	}
	for _, m := range br.Console() {
		t.Errorf("console: %s", m)
	}
	requests := requested()
	for _, r := range requests {
		if r != u {
			t.Errorf("the report requested %s", r)
		}
	}
	if !slices.Contains(requests, u) {
		t.Errorf("network events %v do not show the report's own load: the check saw nothing", requests)
	}
	if b, err := os.ReadFile(file); err == nil && !strings.Contains(string(b), "uPlot 1.6.32") {
		t.Errorf("the report does not name its uPlot version")
	}
}
