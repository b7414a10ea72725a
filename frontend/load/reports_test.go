package load

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	knowingnodev1 "github.com/knowingnode/knowingnode/gen/knowingnode/v1"
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
