package load_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	knowingnodev1 "github.com/knowingnode/knowingnode/gen/knowingnode/v1"
	"github.com/knowingnode/knowingnode/harness/proc"
	"github.com/knowingnode/knowingnode/internal/load/report"
)

type topology struct {
	addrs    []string
	backends []*proc.Process
	client   knowingnodev1.LoadServiceClient
	http     string
}

// startTopology runs three real backends and a real frontend over them with
// tight admission limits: 100 calls/s, 5 s, one load at a time.
func startTopology(t *testing.T) *topology {
	t.Helper()
	dir := proc.Build(t, "../../backend", "../../frontend")
	start := func(name string, env []string, args ...string) *proc.Process {
		p := proc.Start(t, filepath.Join(dir, name), append([]string{"DRAIN_DELAY=0s"}, env...), args...)
		t.Cleanup(func() { p.Stop(t) })
		return p
	}
	tp := &topology{}
	var addrs []string
	for i, node := range []string{"node-a", "node-b", "node-a"} {
		b := start("backend", []string{fmt.Sprintf("POD_NAME=backend-%d", i), "NODE_NAME=" + node},
			"--grpc-addr", "127.0.0.1:0", "--admin-addr", "", "--downward-dir", "")
		tp.backends = append(tp.backends, b)
		addrs = append(addrs, b.Addrs["grpc"])
	}
	fe := start("frontend", []string{"POD_NAME=frontend-0", "NODE_NAME=node-a"},
		"--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0", "--downward-dir", "", "--backend-timeout", "1s",
		"--target", "backends=static:///"+strings.Join(addrs, ","),
		"--load-max-rate", "100", "--load-max-duration", "5s", "--load-max-concurrent", "1")
	cc, err := grpc.NewClient(fe.Addrs["grpc"], grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	tp.client, tp.http, tp.addrs = knowingnodev1.NewLoadServiceClient(cc), "http://"+fe.Addrs["http"], addrs
	return tp
}

// runGRPC collects a load's windows and summary.
func runGRPC(ctx context.Context, c knowingnodev1.LoadServiceClient, req *knowingnodev1.RunRequest, onWindow func(*knowingnodev1.LoadStats)) ([]*knowingnodev1.LoadStats, *knowingnodev1.LoadStats, error) {
	stream, err := c.Run(ctx, req)
	if err != nil {
		return nil, nil, err
	}
	var ws []*knowingnodev1.LoadStats
	for {
		m, err := stream.Recv()
		if err == io.EOF {
			return ws, nil, fmt.Errorf("stream ended without a summary after %d windows", len(ws))
		}
		if err != nil {
			return ws, nil, err
		}
		if w := m.GetWindow(); w != nil {
			ws = append(ws, w)
			if onWindow != nil {
				onWindow(w)
			}
		}
		if s := m.GetSummary(); s != nil {
			if _, err := stream.Recv(); err != io.EOF {
				return ws, s, fmt.Errorf("after the summary: %v, want the end", err)
			}
			return ws, s, nil
		}
	}
}

func TestRunOverGRPC(t *testing.T) {
	tp := startTopology(t)
	t.Run("balanced", func(t *testing.T) {
		ws, sum, err := runGRPC(t.Context(), tp.client, &knowingnodev1.RunRequest{
			Target: "backends", Mode: knowingnodev1.FanOutMode_FAN_OUT_MODE_BALANCED, Rate: 60, Duration: durationpb.New(2 * time.Second),
		}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(ws) < 2 {
			t.Errorf("%d windows over 2s, want 2 or 3", len(ws))
		}
		if r := float64(sum.Sent) / 120; r < 0.8 || r > 1.1 || sum.Ok != sum.Sent {
			t.Errorf("sent %d (%.2f of 120), ok %d", sum.Sent, r, sum.Ok)
		}
		if len(sum.ByPod) != 3 || len(sum.ByNode) != 2 {
			t.Fatalf("by pod %v, by node %v: want 3 pods on 2 nodes", sum.ByPod, sum.ByNode)
		}
		for pod, n := range sum.ByPod {
			if share := float64(n) / float64(sum.Ok); share < 0.2 || share > 0.47 {
				t.Errorf("pod %s took %.2f of the calls (%v)", pod, share, sum.ByPod)
			}
		}
	})
	t.Run("each with a backend killed", func(t *testing.T) {
		var killedAt time.Time
		ws, sum, err := runGRPC(t.Context(), tp.client, &knowingnodev1.RunRequest{
			Target: "backends", Mode: knowingnodev1.FanOutMode_FAN_OUT_MODE_EACH, Rate: 60, Duration: durationpb.New(4 * time.Second),
		}, func(w *knowingnodev1.LoadStats) {
			if killedAt.IsZero() {
				tp.backends[2].Cmd.Process.Kill()
				killedAt = time.Now()
			}
		})
		if err != nil {
			t.Fatal(err)
		}
		var after int
		for _, w := range ws {
			if w.Start.AsTime().Before(killedAt.Add(100 * time.Millisecond)) {
				continue
			}
			after++
			if w.ByPod["backend-2"] != 0 || w.ByCode["UNAVAILABLE"] == 0 {
				t.Errorf("window at %v, after the kill: by pod %v, by code %v; want backend-2 gone and its calls UNAVAILABLE", w.Elapsed.AsDuration(), w.ByPod, w.ByCode)
			}
		}
		if after == 0 {
			t.Errorf("no window after the kill")
		}
		if ws[0].ByPod["backend-2"] == 0 || sum.ByCode["UNAVAILABLE"] == 0 {
			t.Errorf("first window by pod %v, summary by code %v", ws[0].ByPod, sum.ByCode)
		}
	})
}

func TestRunOverREST(t *testing.T) {
	tp := startTopology(t)
	resp, err := http.Post(tp.http+"/v1/load", "application/json",
		strings.NewReader(`{"target":"backends","mode":"FAN_OUT_MODE_BALANCED","rate":40,"duration":"2s"}`))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("status %d: %s", resp.StatusCode, b)
	}
	type stats struct {
		Sent, Ok string // int64 is a JSON string in protojson
		ByPod    map[string]string
	}
	var windows int
	var summary *stats
	runIDs := map[string]int{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		var line struct {
			Result struct {
				Window, Summary *stats
				RunID           string
			}
			Error any
		}
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			t.Fatalf("not a JSON line: %v: %s", err, sc.Text())
		}
		runIDs[line.Result.RunID]++
		switch {
		case line.Error != nil:
			t.Fatalf("error line: %s", sc.Text())
		case line.Result.Window != nil && summary == nil:
			windows++
		case line.Result.Summary != nil:
			summary = line.Result.Summary
		default:
			t.Fatalf("unexpected line %s", sc.Text())
		}
	}
	if windows < 2 || summary == nil {
		t.Fatalf("%d windows and summary %v; want windows, then the summary", windows, summary)
	}
	if len(summary.ByPod) != 3 || summary.Ok != summary.Sent {
		t.Errorf("summary %+v: want every call ok over 3 pods", summary)
	}

	// The run's report: the same windows and summary, each pod's calls.
	ids := slices.Collect(maps.Keys(runIDs))
	if len(ids) != 1 || len(ids[0]) != 32 {
		t.Fatalf("run ids %v; want one of 32 hex digits, on every line", runIDs)
	}
	id := ids[0]
	d := getReport(t, tp.http, id)
	if len(d.Series.T) != windows || fmt.Sprint(d.Summary.Sent) != summary.Sent || d.Target != "backends=static:///"+strings.Join(tp.addrs, ",") {
		t.Errorf("report: %d windows, %d sent, target %q; the stream had %d windows, %s sent", len(d.Series.T), d.Summary.Sent, d.Target, windows, summary.Sent)
	}
	var called int
	for _, p := range d.Pods {
		if p.FirstCall != nil && p.Addr != "" && strings.HasPrefix(p.Name, "backend-") {
			called++
		}
	}
	if called != 3 {
		t.Errorf("report pods %+v; want 3 backends, each with its address and first call", d.Pods)
	}
}

// getReport downloads the report of run id and reads its data back.
func getReport(t *testing.T, base, id string) report.Data {
	t.Helper()
	resp, err := http.Get(base + "/v1/load/runs/" + id + "/report")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/html; charset=utf-8" ||
		!strings.HasPrefix(resp.Header.Get("Content-Disposition"), `attachment; filename="knowingnode-load-`) {
		t.Fatalf("GET the report: %d %v %.200s", resp.StatusCode, resp.Header, b)
	}
	file := filepath.Join(t.TempDir(), "run.html")
	if err := os.WriteFile(file, b, 0o644); err != nil {
		t.Fatal(err)
	}
	d, err := report.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// A load its caller stops: the report has every window the caller got
// (and the one the stop closed), ready at once after the stop.
func TestReportOfAStoppedLoad(t *testing.T) {
	tp := startTopology(t)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	stream, err := tp.client.Run(ctx, &knowingnodev1.RunRequest{Target: "backends", Rate: 30, Duration: durationpb.New(5 * time.Second)})
	if err != nil {
		t.Fatal(err)
	}
	var id string
	for range 2 {
		m, err := stream.Recv()
		if err != nil || m.GetWindow() == nil {
			t.Fatalf("a window: %v %v", m, err)
		}
		id = m.GetRunId()
	}
	cancel()
	d := getReport(t, tp.http, id)
	if n := len(d.Series.T); n < 2 || n > 3 || d.Summary.Length >= 5 {
		t.Errorf("report of a load stopped after 2 windows: %d windows, %.1f s", n, d.Summary.Length)
	}
}

func TestAdmission(t *testing.T) {
	tp := startTopology(t)
	// One load holds the only slot until the test ends.
	holdCtx, release := context.WithCancel(t.Context())
	defer release()
	started := make(chan struct{})
	held := make(chan error, 1)
	go func() {
		var once bool
		_, _, err := runGRPC(holdCtx, tp.client, &knowingnodev1.RunRequest{Target: "backends", Rate: 10, Duration: durationpb.New(5 * time.Second)},
			func(*knowingnodev1.LoadStats) {
				if !once {
					once = true
					close(started)
				}
			})
		held <- err
	}()
	select {
	case <-started:
	case err := <-held:
		t.Fatalf("the holding load ended: %v", err)
	}

	for _, tc := range []struct {
		name     string
		req      string // JSON, for both gRPC (protojson) and REST
		code     codes.Code
		httpCode int
		want     string
	}{
		{"rate over the limit", `{"rate":101,"duration":"1s"}`, codes.InvalidArgument, 400, "--load-max-rate"},
		{"no rate", `{"duration":"1s"}`, codes.InvalidArgument, 400, "--load-max-rate"},
		{"duration over the limit", `{"rate":10,"duration":"6s"}`, codes.InvalidArgument, 400, "--load-max-duration"},
		{"no duration", `{"rate":10}`, codes.InvalidArgument, 400, "--load-max-duration"},
		{"unknown target", `{"target":"10.0.0.1:9090","rate":10,"duration":"1s"}`, codes.NotFound, 404, "configured targets: backends"},
		{"second load at once", `{"rate":10,"duration":"1s"}`, codes.ResourceExhausted, 429, "--load-max-concurrent=1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var req knowingnodev1.RunRequest
			if err := protojsonUnmarshal(tc.req, &req); err != nil {
				t.Fatal(err)
			}
			_, _, err := runGRPC(t.Context(), tp.client, &req, nil)
			if st := status.Convert(err); st.Code() != tc.code || !strings.Contains(st.Message(), tc.want) {
				t.Errorf("gRPC: %v, want %v naming %q", err, tc.code, tc.want)
			}
			resp, err := http.Post(tp.http+"/v1/load", "application/json", strings.NewReader(tc.req))
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.httpCode || !strings.Contains(string(body), tc.want) {
				t.Errorf("REST: %d %s, want %d naming %q", resp.StatusCode, body, tc.httpCode, tc.want)
			}
			var shape struct{ Error *struct{ Code int } }
			if json.Unmarshal(body, &shape); shape.Error == nil || shape.Error.Code != int(tc.code) {
				t.Errorf("REST: body %s is not the error shape {\"error\": {\"code\": %d, ...}}", body, tc.code)
			}
		})
	}

	// Both refusals at the limit (gRPC and REST) are counted, as fan-out
	// refusals are; before, no metric saw them.
	resp, err := http.Get(tp.http + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if want := `knowingnode_load_refused_total{limit="max_concurrent"} 2`; !strings.Contains(string(metrics), want) {
		t.Errorf("metrics lack %s", want)
	}

	// The caller going away ends its load and frees the slot.
	release()
	if err := <-held; status.Code(err) != codes.Canceled {
		t.Errorf("the released load ended with %v, want CANCELLED", err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, sum, err := runGRPC(t.Context(), tp.client, &knowingnodev1.RunRequest{Rate: 20, Duration: durationpb.New(time.Second)}, nil)
		if err == nil {
			if sum.Sent == 0 {
				t.Errorf("load after the release sent nothing")
			}
			break
		}
		if status.Code(err) != codes.ResourceExhausted || time.Now().After(deadline) {
			t.Fatalf("a load after the first caller went away: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
