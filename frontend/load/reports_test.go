package load

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	knowingnodev1 "github.com/knowingnode/knowingnode/gen/knowingnode/v1"
	"github.com/knowingnode/knowingnode/internal/discovery"
	"github.com/knowingnode/knowingnode/internal/load/engine"
	"github.com/knowingnode/knowingnode/internal/load/report"
)

// fakeRun records n one-second windows over two pods and ends.
func fakeRun(t *testing.T, s *Service, target string, n int) (id string, start time.Time) {
	t.Helper()
	r := s.reports.start(describe(target, nil, 0, knowingnodev1.FanOutMode_FAN_OUT_MODE_EACH, 10, time.Duration(n)*time.Second))
	if r == nil {
		t.Fatal("no run recorded")
	}
	start = time.Date(2025, 3, 4, 5, 6, 7, 0, time.UTC)
	for i := range n {
		r.window(&engine.Stats{Start: start.Add(time.Duration(i) * time.Second), Elapsed: time.Duration(i+1) * time.Second, Length: time.Second,
			Sent: 10, OK: 10, ByPod: map[string]int64{"backend-0": 6, "backend-1": 4}, ByNode: map[string]int64{"node-a": 10}})
	}
	r.tracker.Call(start, "10.0.0.1:9090", "backend-0", "node-a", "")
	s.reports.end(r, &engine.Stats{Start: start, Elapsed: time.Duration(n) * time.Second, Length: time.Duration(n) * time.Second,
		Sent: int64(10 * n), OK: int64(10 * n), RequestedRate: 10, ByPod: map[string]int64{"backend-0": int64(6 * n), "backend-1": int64(4 * n)}})
	return r.id, start
}

func wantCode(t *testing.T, err error, code codes.Code, in string) {
	t.Helper()
	if status.Code(err) != code || !strings.Contains(status.Convert(err).Message(), in) {
		t.Errorf("error %v; want %v saying %q", err, code, in)
	}
}

// The store keeps the last --load-reports reports, each the report of its
// run's windows, under ids of 128 random bits, and says why one is gone.
func TestReportsKeepTheLastRuns(t *testing.T) {
	const keep = 3
	s := New(Options{Reports: keep})
	var ids []string
	seen := map[string]bool{}
	for i := range keep + 2 {
		id, _ := fakeRun(t, s, "backends", 3+i)
		if !runIDPattern.MatchString(id) || seen[id] {
			t.Fatalf("run id %q: want 32 hex digits, new each run", id)
		}
		seen[id] = true
		ids = append(ids, id)
	}
	if n, b := s.reports.kept(); n != keep || b <= 0 || b > MaxReportBytes {
		t.Errorf("kept %d reports of %d bytes; want %d, within %d", n, b, keep, MaxReportBytes)
	}
	if len(s.reports.runs) != keep {
		t.Errorf("%d runs held; want %d", len(s.reports.runs), keep)
	}
	for i, id := range ids {
		name, html, err := s.Report(t.Context(), id)
		if i < 2 {
			wantCode(t, err, codes.NotFound, "--load-reports")
			continue
		}
		if err != nil {
			t.Fatalf("run %d: %v", i, err)
		}
		if want := "knowingnode-load-backends-20250304T050607Z.html"; name != want {
			t.Errorf("file name %q, want %q", name, want)
		}
		file := filepath.Join(t.TempDir(), name)
		if err := os.WriteFile(file, html, 0o644); err != nil {
			t.Fatal(err)
		}
		d, err := report.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		if len(d.Series.T) != 3+i || d.Summary.Sent != int64(10*(3+i)) || d.Target != "backends" || len(d.Series.ByPod) != 2 {
			t.Errorf("run %d: %d windows, %d sent, target %q, pods %v; want %d windows, %d sent", i, len(d.Series.T), d.Summary.Sent, d.Target, d.Series.ByPod, 3+i, 10*(3+i))
		}
		if len(d.Pods) != 1 || d.Pods[0].Name != "backend-0" || d.Pods[0].Addr != "10.0.0.1:9090" || d.Pods[0].FirstCall == nil {
			t.Errorf("run %d: pods %+v; want backend-0 at 10.0.0.1:9090 with its first call", i, d.Pods)
		}
	}
	_, _, err := s.Report(t.Context(), "0123456789abcdef0123456789abcdef")
	wantCode(t, err, codes.NotFound, "no report of load run")
	_, _, err = s.Report(t.Context(), "../../etc/passwd")
	wantCode(t, err, codes.NotFound, "32 hex digits")
}

// With --load-reports=0 no run is recorded (no id in the stream).
func TestReportsNone(t *testing.T) {
	s := New(Options{})
	if r := s.reports.start(report.Run{}); r != nil || r.ID() != "" {
		t.Fatalf("run %v recorded with --load-reports=0", r)
	}
	_, _, err := s.Report(t.Context(), "0123456789abcdef0123456789abcdef")
	wantCode(t, err, codes.NotFound, "last 0 runs")
}

// A run still running: its report comes when it ends, if that is soon;
// else UNAVAILABLE. A run that never started leaves no report, and says so.
func TestReportOfARunningRun(t *testing.T) {
	defer func(w time.Duration) { reportWait = w }(reportWait)
	reportWait = 200 * time.Millisecond
	s := New(Options{Reports: 2})
	r := s.reports.start(report.Run{Target: "b"})
	_, _, err := s.Report(t.Context(), r.id)
	wantCode(t, err, codes.Unavailable, "still running")

	reportWait = 10 * time.Second
	go func() {
		time.Sleep(50 * time.Millisecond)
		r.window(&engine.Stats{Start: time.Now(), Elapsed: time.Second, Length: time.Second, Sent: 1, OK: 1})
		s.reports.end(r, &engine.Stats{Start: time.Now(), Sent: 1, OK: 1})
	}()
	if _, html, err := s.Report(t.Context(), r.id); err != nil || len(html) == 0 {
		t.Errorf("report of a run that ended while asked for: %d bytes, %v", len(html), err)
	}

	ctx, cancel := context.WithCancel(t.Context())
	r2 := s.reports.start(report.Run{Target: "b"})
	cancel()
	_, _, err = s.Report(ctx, r2.id)
	wantCode(t, err, codes.Canceled, "")
	s.reports.end(r2, nil)
	_, _, err = s.Report(t.Context(), r2.id)
	wantCode(t, err, codes.NotFound, "left no report")
}

func TestReportFileName(t *testing.T) {
	at := time.Date(2025, 12, 31, 23, 59, 58, 0, time.FixedZone("x", 3600))
	for _, c := range []struct{ target, want string }{
		{"backends=static:///10.0.0.1:9090", "knowingnode-load-backends-20251231T225958Z.html"},
		{"b", "knowingnode-load-b-20251231T225958Z.html"},
		{`a"b/c;d`, "knowingnode-load-a-b-c-d-20251231T225958Z.html"},
		{"", "knowingnode-load-target-20251231T225958Z.html"},
	} {
		if got := fileName(c.target, nil, &engine.Stats{Start: at}); got != c.want {
			t.Errorf("fileName(%q) = %q, want %q", c.target, got, c.want)
		}
	}
}

// fakeSlices is a Source answering what a test sets, as EndpointSlices would.
type fakeSlices struct {
	mu  sync.Mutex
	eps []discovery.Endpoint
}

func (f *fakeSlices) Resolve(context.Context, discovery.Spec) ([]discovery.Endpoint, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]discovery.Endpoint(nil), f.eps...), nil
}

func (f *fakeSlices) set(eps ...discovery.Endpoint) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.eps = eps
}

func slice(addr, pod string, ready bool) discovery.Endpoint {
	return discovery.Endpoint{Addr: addr, Slice: discovery.SliceInfo{Known: true, Ready: ready, Serving: ready,
		NodeName: "node-a", TargetRef: "Pod/" + pod}}
}

// With a kubernetes:/// target, the report of a frontend's load marks each
// pod's lifecycle as the frontend's own discovery saw it: a pod added
// mid-run is new, Ready when its endpoint turned ready, and its time from
// Ready to first call is the truth.
func TestReportFollowsDiscovery(t *testing.T) {
	spec, err := discovery.ParseTarget("backends=kubernetes:///backend.ns:grpc")
	if err != nil {
		t.Fatal(err)
	}
	src := &fakeSlices{}
	src.set(slice("10.0.0.1:9090", "backend-0", true))
	target := discovery.NewTarget(spec, src, discovery.TargetOptions{Interval: time.Hour})
	if err := target.Refresh(t.Context()); err != nil {
		t.Fatal(err)
	}
	s := New(Options{Reports: 1})
	s.Follow("backends", target, time.Second)
	w := s.watched["backends"]
	r := s.reports.start(describe("backends", w.t, w.refresh, knowingnodev1.FanOutMode_FAN_OUT_MODE_EACH, 10, 3*time.Second))
	ctx, cancel := context.WithCancel(t.Context())
	var following sync.WaitGroup
	following.Go(func() { r.follow(ctx, target) })

	start := time.Now()
	observed := func(what string, marks int) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for {
			d := report.Build(report.Run{Tracker: r.tracker})
			n := 0
			for _, p := range d.Pods {
				n += len(p.Marks)
			}
			if n >= marks {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: %d marks, want %d: %+v", what, n, marks, d.Pods)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	observed("backend-0 at the start", 2) // appeared, ready
	r.tracker.Call(start, "10.0.0.1:9090", "backend-0", "node-a", "")
	time.Sleep(20 * time.Millisecond)
	src.set(slice("10.0.0.1:9090", "backend-0", true), slice("10.0.0.2:9090", "backend-1", false))
	if err := target.Refresh(t.Context()); err != nil {
		t.Fatal(err)
	}
	observed("backend-1 not ready", 6) // + first and last call of backend-0, appeared and not-serving of backend-1
	time.Sleep(20 * time.Millisecond)
	src.set(slice("10.0.0.1:9090", "backend-0", true), slice("10.0.0.2:9090", "backend-1", true))
	if err := target.Refresh(t.Context()); err != nil {
		t.Fatal(err)
	}
	ready := time.Now()
	observed("backend-1 ready", 8) // + ready and serving
	first := ready.Add(300 * time.Millisecond)
	r.tracker.Call(first, "10.0.0.2:9090", "backend-1", "node-a", "")
	cancel()
	following.Wait()
	r.window(&engine.Stats{Start: start, Elapsed: time.Second, Length: time.Second, Sent: 2, OK: 2})
	s.reports.end(r, &engine.Stats{Start: start, Sent: 2, OK: 2})

	_, html, err := s.Report(t.Context(), r.id)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "run.html")
	if err := os.WriteFile(file, html, 0o644); err != nil {
		t.Fatal(err)
	}
	d, err := report.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if d.Discovery != "kubernetes" || d.Target != "backends=kubernetes:///backend.ns:grpc" {
		t.Errorf("discovery %q, target %q", d.Discovery, d.Target)
	}
	var b1 *report.Pod
	for i, p := range d.Pods {
		if p.Name == "backend-1" {
			b1 = &d.Pods[i]
		}
	}
	if b1 == nil || !b1.New || b1.Addr != "10.0.0.2:9090" || b1.ReadyToFirstCall == nil {
		t.Fatalf("backend-1 in the report: %+v; want new, at its address, with Ready to first call", b1)
	}
	if got := *b1.ReadyToFirstCall; got < 0.25 || got > 0.35 {
		t.Errorf("backend-1: Ready to first call %.3f s, want 0.3 s", got)
	}
}
