package livemetrics

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"

	"github.com/knowingnode/knowingnode/internal/load/engine"
)

// However many pods and codes the calls name, the labels take at most
// MaxPods pods (plus "other" and "" for failures) and gRPC's code names
// (plus "other").
func TestLabelValuesBounded(t *testing.T) {
	m := New(100)
	for i := range 1000 {
		m.Call(time.Millisecond, "OK", fmt.Sprintf("pod-%d", i))
		m.Call(2*time.Millisecond, fmt.Sprintf("CODE_%d", i), "")
	}
	m.Call(time.Millisecond, "UNAVAILABLE", "")
	mfs, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	pods, codesSeen := map[string]bool{}, map[string]bool{}
	var total float64
	for _, mf := range mfs {
		if mf.GetName() != "knowingnode_load_calls_total" {
			continue
		}
		for _, mt := range mf.GetMetric() {
			total += mt.GetCounter().GetValue()
			for _, l := range mt.GetLabel() {
				switch l.GetName() {
				case "pod":
					pods[l.GetValue()] = true
				case "code":
					codesSeen[l.GetValue()] = true
				}
			}
		}
	}
	if len(pods) > MaxPods+2 || !pods[Other] || !pods["pod-0"] || pods[fmt.Sprintf("pod-%d", MaxPods)] {
		t.Errorf("%d pod label values (other %v); want at most %d, the first %d pods and %q", len(pods), pods[Other], MaxPods+2, MaxPods, Other)
	}
	if len(codesSeen) != 3 || !codesSeen["OK"] || !codesSeen["UNAVAILABLE"] || !codesSeen[Other] {
		t.Errorf("code label values %v; want OK, UNAVAILABLE and %q", codesSeen, Other)
	}
	if total != 2001 {
		t.Errorf("%v calls counted, want 2001: none lost to the cap", total)
	}
}

// The metrics pass the linter promtool check metrics runs (promlint, via
// client_golang's testutil), and the histogram has native buckets besides
// the classic ones.
func TestMetricsLintAndServe(t *testing.T) {
	m := New(50)
	m.Window(&engine.Stats{Sent: 50, Late: 1, Dropped: 2, Rate: 49.5})
	for i := range 200 {
		m.Call(time.Duration(i)*100*time.Microsecond, "OK", "backend-0")
	}
	problems, err := testutil.GatherAndLint(m.Registry())
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint: %s: %s", p.Metric, p.Text)
	}
	mfs, _ := m.Registry().Gather()
	for _, mf := range mfs {
		if mf.GetName() == "knowingnode_load_call_duration_seconds" {
			h := mf.GetMetric()[0].GetHistogram()
			if h.Schema == nil || len(h.GetPositiveSpan()) == 0 || len(h.GetBucket()) == 0 || h.GetSampleCount() != 200 {
				t.Errorf("histogram: schema %v, %d spans, %d classic buckets, %d samples; want native and classic buckets over 200",
					h.Schema, len(h.GetPositiveSpan()), len(h.GetBucket()), h.GetSampleCount())
			}
		}
	}
	srv, err := Serve(t.Context(), "127.0.0.1:0", m)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get("http://" + srv.Addr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	// What `curl …/metrics | promtool check metrics` does: promtool's
	// check metrics is client_golang's promlint over the scraped text.
	problems, err = promlint.New(bytes.NewReader(body)).Lint()
	if err != nil {
		t.Fatalf("lint the served text: %v", err)
	}
	for _, p := range problems {
		t.Errorf("served /metrics, lint: %s: %s", p.Metric, p.Text)
	}
	for _, want := range []string{"knowingnode_load_sent_total 50", `knowingnode_load_calls_total{code="OK",pod="backend-0"} 200`, "knowingnode_load_requested_rate 50", "knowingnode_load_call_duration_seconds_bucket"} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if err := srv.Close(); err != nil {
		t.Errorf("close: %v", err)
	}
}
