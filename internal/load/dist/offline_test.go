package dist

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/knowingnode/knowingnode/internal/load/engine"
)

// roundTrip writes lines as a worker's --json file and reads them back.
func roundTrip(t *testing.T, name string, ls []WorkerLine) []WorkerLine {
	t.Helper()
	var b bytes.Buffer
	b.WriteString("a log line that is not JSON\n")
	for _, l := range ls {
		if err := json.NewEncoder(&b).Encode(l); err != nil {
			t.Fatal(err)
		}
	}
	out, err := ReadWorkerLines(name, &b)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func synthetic(run string, slot, workers int, t0 time.Time, windows int) []WorkerLine {
	var ls []WorkerLine
	for k := range windows {
		h := newHist()
		for v := range int64(50) {
			h.RecordValue(100 + v*int64(slot+1))
		}
		ls = append(ls, WorkerLine{Type: "worker-window", Run: run, Worker: "w" + string(rune('0'+slot)), Slot: slot, Workers: workers,
			T0: t0, Window: time.Second, Duration: 4 * time.Second, Rate: 100, Index: k, FirstSend: t0.Add(time.Duration(slot) * time.Millisecond),
			Stats: &engine.Stats{Sent: 50, OK: 50, ByCode: map[string]int64{"OK": 50}, ByPod: map[string]int64{"p": 50}, Hist: h}})
	}
	for i := range ls {
		enc, err := encodeWindow(i, ls[i].Stats, 0, 1)
		if err != nil {
			panic(err)
		}
		ls[i].Hist = string(enc.Histogram)
	}
	return ls
}

func TestMergeFiles(t *testing.T) {
	t0 := time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC)
	files := map[string][]WorkerLine{}
	for s := range 3 {
		name := "w" + string(rune('0'+s)) + ".jsonl"
		files[name] = roundTrip(t, name, synthetic("run-a", s, 3, t0.Add(time.Duration(s)*10*time.Millisecond), 4))
	}
	res, windows, err := MergeFiles(files, DefaultMaxStartGap)
	if err != nil {
		t.Fatal(err)
	}
	if len(windows) != 4 || res.Summary.Sent != 600 || res.Summary.ByPod["p"] != 600 || res.Degraded || windows[0].Workers != 3 {
		t.Errorf("%d windows, summary %+v, degraded %v", len(windows), res.Summary.Stats, res.Degraded)
	}
	if res.Summary.Latency.Max != 247*time.Microsecond {
		t.Errorf("max %v, want the slowest worker's 247µs", res.Summary.Latency.Max)
	}
	// Each worker sent first <slot> ms after its t0; the t0s differ by
	// the workers' clock offsets, which the skew takes out.
	if res.StartSkew != 2*time.Millisecond {
		t.Errorf("start skew %v, want 2ms", res.StartSkew)
	}
	// A file cut short: that worker is lost after its last window.
	files["w1.jsonl"] = files["w1.jsonl"][:2]
	res, windows, err = MergeFiles(files, DefaultMaxStartGap)
	if err != nil || !res.Degraded || !res.Workers[1].Lost || res.Workers[1].Missing != 2*33 || windows[3].Workers != 2 {
		t.Errorf("a file cut short: %v, %+v", err, res.Workers)
	}
	// A worker without its file: merged, and its share reported missing.
	delete(files, "w2.jsonl")
	res, _, err = MergeFiles(files, DefaultMaxStartGap)
	if err != nil || !res.Degraded || res.Summary.Missing == 0 || !strings.Contains(res.Note, "2 of the run's 3") {
		t.Errorf("a missing file: %v, %+v", err, res)
	}
}

// Each kind of mismatched files is refused with an error saying why.
func TestMergeFilesRefuses(t *testing.T) {
	t0 := time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC)
	shape := synthetic("run-a", 1, 2, t0, 3)
	for i := range shape {
		shape[i].Window = 2 * time.Second
	}
	mixed := append(synthetic("run-a", 0, 2, t0, 2), synthetic("run-a", 1, 2, t0, 1)...)
	for _, tc := range []struct {
		name  string
		files map[string][]WorkerLine
		want  string
	}{
		{"different runs", map[string][]WorkerLine{"a": synthetic("run-a", 0, 2, t0, 3), "b": synthetic("run-b", 1, 2, t0, 3)}, "different runs"},
		{"misaligned starts", map[string][]WorkerLine{"a": synthetic("run-a", 0, 2, t0, 3), "b": synthetic("run-a", 1, 2, t0.Add(2*time.Second), 3)}, "starts do not line up"},
		{"same worker twice", map[string][]WorkerLine{"a": synthetic("run-a", 1, 2, t0, 3), "b": synthetic("run-a", 1, 2, t0, 3)}, "given twice"},
		{"different shape", map[string][]WorkerLine{"a": synthetic("run-a", 0, 2, t0, 3), "b": shape}, "disagree on the run's shape"},
		{"two workers in one file", map[string][]WorkerLine{"a": mixed}, "one file per worker"},
	} {
		if _, _, err := MergeFiles(tc.files, DefaultMaxStartGap); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error saying %q", tc.name, err, tc.want)
		}
	}
	// A single run's --json (no run id) is not a worker's file.
	single := `{"type":"window","sent":5}` + "\n" + `{"type":"summary","sent":5}` + "\n"
	if _, err := ReadWorkerLines("run.jsonl", strings.NewReader(single)); err == nil || !strings.Contains(err.Error(), "no worker window") {
		t.Errorf("a single run's file: %v", err)
	}
}

func TestThresholds(t *testing.T) {
	sum := &engine.Stats{OK: 990, Failed: 10, Latency: engine.Latency{P99: 30 * time.Millisecond}}
	if v := (Thresholds{MaxP99: 50 * time.Millisecond, MaxErrorRate: 0.02}).Check(sum); len(v) != 0 {
		t.Errorf("within bounds: %v", v)
	}
	v := (Thresholds{MaxP99: 20 * time.Millisecond, MaxErrorRate: 0.005}).Check(sum)
	if len(v) != 2 || !strings.Contains(v[0], "--max-p99") || !strings.Contains(v[1], "--max-error-rate") {
		t.Errorf("out of bounds: %v", v)
	}
}
