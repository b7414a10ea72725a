package report

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/knowingnode/knowingnode/internal/load/engine"
)

// t0 is the synthetic run's measured start.
var t0 = time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC)

func at(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }

// syntheticRun is 20 one-second windows over a Service whose pods come and
// go: backend-0 and -1 from the start, backend-2 added at 5 s (Ready at
// 6.5 s, first call at 7 s), backend-3 Ready at 8 s and never called,
// backend-1 terminating at 15 s and gone at 17 s; an HPA scales 2 → 4 at
// 4 s.
func syntheticRun() Run {
	tr := NewTracker()
	ep := func(i int, ready, serving, term bool) Endpoint {
		return Endpoint{Addr: "10.0.0." + string(rune('1'+i)) + ":9090", Pod: "backend-" + string(rune('0'+i)),
			Node: []string{"node-a", "node-b"}[i%2], Zone: []string{"zone-1", "zone-2"}[i%2], Known: true,
			Ready: ready, Serving: serving, Terminating: term}
	}
	tr.Observe(at(-1), []Endpoint{ep(0, true, true, false), ep(1, true, true, false)})
	tr.Observe(at(5), []Endpoint{ep(0, true, true, false), ep(1, true, true, false), ep(2, false, false, false)})
	tr.Observe(at(6.5), []Endpoint{ep(0, true, true, false), ep(1, true, true, false), ep(2, true, true, false)})
	tr.Observe(at(8), []Endpoint{ep(0, true, true, false), ep(1, true, true, false), ep(2, true, true, false), ep(3, true, true, false)})
	tr.Observe(at(15), []Endpoint{ep(0, true, true, false), ep(1, false, true, true), ep(2, true, true, false), ep(3, true, true, false)})
	tr.Observe(at(17), []Endpoint{ep(0, true, true, false), ep(2, true, true, false), ep(3, true, true, false)})

	var windows []*engine.Stats
	sum := &engine.Stats{Start: t0, Length: 20 * time.Second, Elapsed: 20 * time.Second, RequestedRate: 100,
		ByPod: map[string]int64{}, ByNode: map[string]int64{}, ByZone: map[string]int64{}, ByCode: map[string]int64{}}
	for i := range 20 {
		w := &engine.Stats{Start: at(float64(i)), Length: time.Second, Elapsed: time.Duration(i+1) * time.Second,
			Sent: 100, OK: 99, Failed: 1, Rate: 100, ByCode: map[string]int64{"OK": 99, "UNAVAILABLE": 1},
			ByPod: map[string]int64{}, ByNode: map[string]int64{}, ByZone: map[string]int64{},
			Latency: engine.Latency{P50: 2 * time.Millisecond, P90: 4 * time.Millisecond, P99: 9 * time.Millisecond, Max: 20 * time.Millisecond}}
		pods := []int{0, 1}
		if i >= 7 {
			pods = append(pods, 2)
		}
		if i >= 15 {
			pods = []int{0, 2}
		}
		for j, p := range pods {
			e := ep(p, true, true, false)
			n := int64(99 / len(pods))
			if j == 0 {
				n += int64(99 % len(pods))
			}
			w.ByPod[e.Pod] += n
			w.ByNode[e.Node] += n
			w.ByZone[e.Zone] += n
			sum.ByPod[e.Pod] += n
			sum.ByNode[e.Node] += n
			sum.ByZone[e.Zone] += n
			first := float64(i)
			if p == 2 && i == 7 {
				first = 7
			}
			tr.Call(at(first), e.Addr, e.Pod, e.Node, e.Zone)
			tr.Call(at(float64(i)+0.99), e.Addr, e.Pod, e.Node, e.Zone)
		}
		sum.Sent += w.Sent
		sum.OK += w.OK
		sum.Failed += w.Failed
		sum.ByCode["OK"] += 99
		sum.ByCode["UNAVAILABLE"]++
		windows = append(windows, w)
	}
	sum.Rate, sum.Latency = 100, windows[0].Latency
	return Run{Title: "synthetic run", Args: []string{"--target", "kubernetes:///backend.default:grpc"}, Target: "kubernetes:///backend.default:grpc",
		Call: "identity", Refresh: time.Second, Discovery: "kubernetes", Windows: windows, Summary: sum, Tracker: tr,
		Decisions: []Decision{{At: at(4), HPA: "backend", Current: 2, Desired: 4, Metric: "cpu 180% of 50%"}}}
}

// syntheticMarks is the number of lifecycle marks of syntheticRun, counted
// by hand: backend-0 appeared, ready, first and last call (4); backend-1
// appeared, ready, not-ready, terminating, gone, first and last (7);
// backend-2 appeared, not-serving, ready, serving, first and last (6);
// backend-3 appeared and ready (2).
const syntheticMarks = 19

func TestBuildLifecycle(t *testing.T) {
	d := Build(syntheticRun())
	byName := map[string]Pod{}
	marks := 0
	for _, p := range d.Pods {
		byName[p.Name] = p
		marks += len(p.Marks)
	}
	if marks != syntheticMarks {
		t.Errorf("%d marks, want %d: %+v", marks, syntheticMarks, d.Pods)
	}
	p2 := byName["backend-2"]
	if !p2.New || p2.Ready == nil || *p2.Ready != 6.5 || p2.ReadyToFirstCall == nil || *p2.ReadyToFirstCall != 0.5 {
		t.Errorf("backend-2: %+v; want new, ready at 6.5 s, first call 0.5 s later", p2)
	}
	if p0 := byName["backend-0"]; p0.New || p0.ReadyToFirstCall != nil {
		t.Errorf("backend-0 was there from the start: %+v", p0)
	}
	if p1 := byName["backend-1"]; p1.Terminating == nil || *p1.Terminating != 15 {
		t.Errorf("backend-1: %+v; want terminating at 15 s", p1)
	}
	if len(d.NeverCalled) != 1 || d.NeverCalled[0] != "backend-3" {
		t.Errorf("never called %v, want [backend-3]", d.NeverCalled)
	}
	if got := d.Series.Ready; len(got) != 20 || *got[0] != 2 || *got[6] != 3 || *got[7] != 4 || *got[19] != 3 {
		t.Errorf("ready at 1, 7, 8 and 20 s: %d %d %d %d; want 2 3 4 3", *got[0], *got[6], *got[7], *got[19])
	}
	if len(d.Decisions) != 1 || !strings.Contains(d.Decisions[0].Label, "2 → 4") {
		t.Errorf("decisions %+v", d.Decisions)
	}
}

func TestWriteEscapesData(t *testing.T) {
	r := syntheticRun()
	r.Title = `</script><script>alert(1)</script>`
	r.Args = []string{"</script>"}
	var b bytes.Buffer
	if err := Write(&b, Build(r)); err != nil {
		t.Fatal(err)
	}
	page := b.String()
	if n := strings.Count(strings.ToLower(page), "</script>"); n != 3 {
		t.Errorf("%d </script> in the page, want the 3 that close its scripts", n)
	}
	start := strings.Index(page, `id="report-data">`) + len(`id="report-data">`)
	end := strings.Index(page[start:], "</script>")
	var d Data
	if err := json.Unmarshal([]byte(page[start:start+end]), &d); err != nil || d.Title != r.Title {
		t.Errorf("embedded data does not decode to the run: %v %q", err, d.Title)
	}
}
