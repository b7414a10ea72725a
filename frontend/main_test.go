package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	knowingnodev1 "github.com/knowingnode/knowingnode/gen/knowingnode/v1"
	"github.com/knowingnode/knowingnode/harness/proc"
	"github.com/knowingnode/knowingnode/internal/load/livemetrics"
)

// startProcess runs one of the binaries built for the test, with no drain
// delay, and stops it with SIGTERM at the end of the test.
func startProcess(t *testing.T, dir, name string, env []string, args ...string) *proc.Process {
	t.Helper()
	p := proc.Start(t, filepath.Join(dir, name), append([]string{"DRAIN_DELAY=0s"}, env...), args...)
	t.Cleanup(func() { p.Stop(t) })
	return p
}

// topology starts backends on two nodes, one failing with an injected code,
// one killed, and a frontend over all of them.
type topology struct {
	frontend *proc.Process
	backends []*proc.Process
}

func startTopology(t *testing.T) *topology {
	t.Helper()
	dir := proc.Build(t, "../backend", ".")
	var tp topology
	var addrs []string
	for i, node := range []string{"node-a", "node-b", "node-a"} {
		b := startProcess(t, dir, "backend", []string{
			fmt.Sprintf("POD_NAME=backend-%d", i), "NODE_NAME=" + node, "POD_IP=127.0.0.1",
		}, "--grpc-addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0", "--downward-dir", "")
		tp.backends = append(tp.backends, b)
		addrs = append(addrs, b.Addrs["grpc"])
	}
	failing := startProcess(t, dir, "backend", []string{"POD_NAME=backend-failing", "NODE_NAME=node-b"},
		"--grpc-addr", "127.0.0.1:0", "--admin-addr", "", "--downward-dir", "",
		"--fault-error-rate", "1", "--fault-error-code", "RESOURCE_EXHAUSTED")
	killed := startProcess(t, dir, "backend", nil, "--grpc-addr", "127.0.0.1:0", "--admin-addr", "", "--downward-dir", "")
	addrs = append(addrs, failing.Addrs["grpc"], killed.Addrs["grpc"])
	killed.Stop(t)

	tp.frontend = startProcess(t, dir, "frontend", []string{"POD_NAME=frontend-0", "NODE_NAME=node-a"},
		"--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0", "--downward-dir", "",
		"--backend-timeout", "2s",
		"--target", "ok=static:///"+strings.Join(addrs[:3], ","),
		"--target", "all=static:///"+strings.Join(addrs, ","))
	return &tp
}

func getJSON(t *testing.T, url string, wantStatus int, into any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != wantStatus {
		t.Fatalf("GET %s: status %d, want %d; body %s", url, resp.StatusCode, wantStatus, body)
	}
	if into != nil {
		if err := json.Unmarshal(body, into); err != nil {
			t.Fatalf("GET %s: %v in %s", url, err, body)
		}
	}
}

type fanOutJSON struct {
	Frontend struct{ PodName string } `json:"frontend"`
	Results  []struct {
		Address  string
		Code     string
		Message  string
		Identity *struct{ PodName, NodeName string }
	}
	Summary struct {
		Total, Ok, Failed int
		ByNode            map[string]int
		ByPod             map[string]int
	}
}

func TestFrontendOverHTTPAndGRPC(t *testing.T) {
	tp := startTopology(t)
	base := "http://" + tp.frontend.Addrs["http"]

	var fo fanOutJSON
	getJSON(t, base+"/v1/fanout", http.StatusOK, &fo)
	if fo.Frontend.PodName != "frontend-0" {
		t.Errorf("frontend pod %q, want frontend-0", fo.Frontend.PodName)
	}
	if len(fo.Summary.ByPod) != 3 || len(fo.Summary.ByNode) != 2 || fo.Summary.Ok != 3 {
		t.Errorf("default target: pods %v nodes %v ok %d; want 3 pods on 2 nodes", fo.Summary.ByPod, fo.Summary.ByNode, fo.Summary.Ok)
	}

	getJSON(t, base+"/v1/fanout?target=all&mode=each&timeout=10s", http.StatusOK, &fo)
	codes := map[string]int{}
	for _, r := range fo.Results {
		codes[r.Code]++
	}
	if codes["OK"] != 3 || codes["RESOURCE_EXHAUSTED"] != 1 || codes["UNAVAILABLE"] != 1 {
		t.Errorf("codes %v; want 3 OK, 1 RESOURCE_EXHAUSTED (injected), 1 UNAVAILABLE (killed)", codes)
	}

	// The same through gRPC.
	cc, err := grpc.NewClient(tp.frontend.Addrs["grpc"], grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	resp, err := knowingnodev1.NewFanOutServiceClient(cc).FanOut(t.Context(), &knowingnodev1.FanOutRequest{Target: "ok"})
	if err != nil || len(resp.GetSummary().GetByPod()) != 3 {
		t.Errorf("gRPC FanOut: %v, by pod %v", err, resp.GetSummary().GetByPod())
	}

	// Bad input: the gRPC code mapped to its HTTP status, with a message.
	for _, c := range []struct {
		query  string
		status int
		msg    string
	}{
		{"target=nope", 404, "configured targets: ok, all"},
		{"mode=BALANCED&count=20000", 400, "want 0..10000"},
		{"timeout=2m", 400, "at most 1m0s"},
		{"timeout=soon", 400, "timeout"},
		{"mode=sideways", 400, "want EACH or BALANCED"},
	} {
		var e struct{ Error struct{ Message string } }
		getJSON(t, base+"/v1/fanout?"+c.query, c.status, &e)
		if !strings.Contains(e.Error.Message, c.msg) {
			t.Errorf("%s: message %q, want it to contain %q", c.query, e.Error.Message, c.msg)
		}
	}

	var targets struct {
		Targets []struct {
			Name      string
			Endpoints []struct{ Address string }
		}
		DefaultTarget string
	}
	getJSON(t, base+"/v1/targets", http.StatusOK, &targets)
	if targets.DefaultTarget != "ok" || len(targets.Targets) != 2 || len(targets.Targets[1].Endpoints) != 5 {
		t.Errorf("targets %+v", targets)
	}
	var openapi struct{ Paths map[string]any }
	getJSON(t, base+"/openapi.json", http.StatusOK, &openapi)
	for _, p := range []string{"/v1/fanout", "/v1/identity", "/v1/targets"} {
		if openapi.Paths[p] == nil {
			t.Errorf("openapi.json lacks %s", p)
		}
	}
	getJSON(t, base+"/hostz", http.StatusOK, &fo)
	if fo.Summary.Ok != 3 {
		t.Errorf("/hostz: %d OK, want 3", fo.Summary.Ok)
	}
}

func scrape(t *testing.T, addr string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	p := expfmt.NewTextParser(model.UTF8Validation)
	mf, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return mf
}

// value sums the family's samples whose labels include want.
func value(mf map[string]*dto.MetricFamily, name string, want map[string]string) float64 {
	var sum float64
	for _, m := range mf[name].GetMetric() {
		match := true
		for k, v := range want {
			found := false
			for _, l := range m.GetLabel() {
				if l.GetName() == k && l.GetValue() == v {
					found = true
				}
			}
			match = match && found
		}
		if match {
			sum += m.GetGauge().GetValue() + m.GetCounter().GetValue() + float64(m.GetHistogram().GetSampleCount())
		}
	}
	return sum
}

func TestMetricsAfterFanOut(t *testing.T) {
	tp := startTopology(t)
	base := "http://" + tp.frontend.Addrs["http"]
	before := scrape(t, tp.frontend.Addrs["http"])
	getJSON(t, base+"/v1/fanout?target=ok", http.StatusOK, nil)
	getJSON(t, base+"/v1/fanout?target=all", http.StatusOK, nil)
	after := scrape(t, tp.frontend.Addrs["http"])

	if v := value(after, "knowingnode_discovery_endpoints", map[string]string{"target": "ok"}); v != 3 {
		t.Errorf("discovery gauge for target ok = %v, want 3", v)
	}
	moved := func(name string, l map[string]string) float64 { return value(after, name, l) - value(before, name, l) }
	if d := moved("knowingnode_fanout_requests_total", map[string]string{"target": "ok", "result": "ok"}); d != 1 {
		t.Errorf("ok fan-outs moved by %v, want 1", d)
	}
	if d := moved("knowingnode_fanout_requests_total", map[string]string{"target": "all", "result": "partial"}); d != 1 {
		t.Errorf("partial fan-outs moved by %v, want 1", d)
	}
	for code, want := range map[string]float64{"OK": 3, "RESOURCE_EXHAUSTED": 1, "UNAVAILABLE": 1} {
		if d := moved("knowingnode_fanout_backend_calls_total", map[string]string{"target": "all", "code": code}); d != want {
			t.Errorf("backend calls with code %s moved by %v, want %v", code, d, want)
		}
	}
	if d := moved("knowingnode_fanout_backend_pod_calls_total", map[string]string{"pod": "backend-1", "node": "node-b"}); d != 2 {
		t.Errorf("calls answered by backend-1 on node-b moved by %v, want 2", d)
	}
	if d := moved("grpc_client_handled_total", map[string]string{"grpc_code": "ResourceExhausted"}); d != 1 {
		t.Errorf("gRPC client metrics: ResourceExhausted moved by %v, want 1", d)
	}
	if d := moved("knowingnode_http_requests_total", map[string]string{"handler": "api", "code": "200"}); d != 2 {
		t.Errorf("HTTP requests moved by %v, want 2", d)
	}
	if value(after, "knowingnode_build_info", map[string]string{"tier": "frontend"}) != 1 {
		t.Error("build info missing")
	}
	// The backend's admin port serves its own server metrics.
	b := scrape(t, tp.backends[0].Addrs["admin"])
	if v := value(b, "grpc_server_handled_total", map[string]string{"grpc_method": "GetIdentity", "grpc_code": "OK"}); v != 2 {
		t.Errorf("backend-0 GetIdentity OK = %v, want 2", v)
	}
}

// Every metric a dashboard panel queries must exist in a real scrape of the
// two tiers, so the dashboard cannot drift from the code.
func TestDashboardMetricsExist(t *testing.T) {
	raw, err := os.ReadFile("../deploy/grafana/knowingnode-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Title   string
			Targets []struct{ Expr string }
		}
	}
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatalf("dashboard JSON: %v", err)
	}
	tp := startTopology(t)
	getJSON(t, "http://"+tp.frontend.Addrs["http"]+"/v1/fanout?target=all", http.StatusOK, nil)
	have := map[string]bool{}
	for _, mf := range []map[string]*dto.MetricFamily{scrape(t, tp.frontend.Addrs["http"]), scrape(t, tp.backends[0].Addrs["admin"])} {
		for name := range mf {
			have[name] = true
		}
	}
	// The load generator's own (bin/load --metrics-addr), after one call.
	lm := livemetrics.New(1)
	lm.Call(time.Millisecond, "OK", "backend-0")
	lfs, err := lm.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range lfs {
		have[mf.GetName()] = true
	}
	metricName := regexp.MustCompile(`\b(?:grpc|knowingnode|go|process)_[a-z0-9_]+\b`)
	// Label names look like metric names: drop matchers and groupings first.
	labels := regexp.MustCompile(`\{[^}]*\}|\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)`)
	if len(dash.Panels) < 6 {
		t.Fatalf("dashboard has %d panels", len(dash.Panels))
	}
	for _, p := range dash.Panels {
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, q := range p.Targets {
			names := metricName.FindAllString(labels.ReplaceAllString(q.Expr, ""), -1)
			if len(names) == 0 {
				t.Errorf("panel %q: no metric in %q", p.Title, q.Expr)
			}
			for _, n := range names {
				family := n
				for _, suf := range []string{"_bucket", "_count", "_sum"} {
					if base := strings.TrimSuffix(n, suf); base != n && have[base] {
						family = base
					}
				}
				if !have[family] {
					t.Errorf("panel %q queries %s, which no tier exports", p.Title, n)
				}
			}
		}
	}
}

// Every flag's bad values exit 2 before anything starts, with one line
// naming the flag, the value and what is accepted. The --load-* values were
// validated on a copy taken before parsing, so all of them started (and
// --load-max-rate 1e9 then ran 40,000 calls in 2 s).
func TestBadFlagsExit2(t *testing.T) {
	frontend := filepath.Join(proc.Build(t, "."), "frontend")
	ok := []string{"--target", "a=static:///127.0.0.1:1"}
	for _, c := range []struct {
		args []string
		flag string // the flag the line must name
		env  []string
	}{
		{[]string{"--bogus"}, "-bogus", nil},
		{[]string{"extra"}, `"extra"`, nil},
		// Targets.
		{[]string{"--target", "x"}, "-target", nil},
		{[]string{"--target", "a=ftp:///x"}, "-target", nil},
		{[]string{"--grpc-addr", "127.0.0.1:0"}, "-target", nil}, // none given
		{append(ok, "--target", "a=static:///127.0.0.1:2"), "-target", nil},
		{append(ok, "--default-target", "b"), "-default-target", nil},
		{append(ok, "--refresh-interval", "1ns"), "-refresh-interval", nil},
		{append(ok, "--refresh-interval", "2h"), "-refresh-interval", nil},
		// Addresses and files.
		{append(ok, "--http-addr", ""), "-http-addr", nil},
		{append(ok, "--http-addr", "8080"), "-http-addr", nil},
		{append(ok, "--http-addr", ":http-alt"), "-http-addr", nil},
		{append(ok, "--kubeconfig", "/nonexistent/kubeconfig"), "-kubeconfig", nil},
		{append(ok, "--allow-cross-site=maybe"), "-allow-cross-site", nil},
		// The fan-out.
		{append(ok, "--backend-timeout", "0s"), "-backend-timeout", nil},
		{append(ok, "--backend-timeout", "2m"), "-backend-timeout", nil},
		{append(ok, "--fanout-timeout", "-1s"), "-fanout-timeout", nil},
		{append(ok, "--fanout-concurrency", "0"), "-fanout-concurrency", nil},
		{append(ok, "--max-fanouts", "0"), "-max-fanouts", nil},
		{append(ok, "--max-backend-calls", "10"), "-max-backend-calls", nil}, // below fanout-concurrency
		{append(ok, "--max-watchers", "0"), "-max-watchers", nil},
		{append(ok, "--streaming=sometimes"), "-streaming", nil},
		{append(ok, "--wrr-blackout", "-1s"), "-wrr-blackout", nil},
		{append(ok, "--wrr-update", "10ms"), "-wrr-update", nil},
		{append(ok, "--wrr-expiration", "0s"), "-wrr-expiration", nil},
		{ok, "-streaming", []string{"STREAMING=sometimes"}},
		// Loads: each was accepted before.
		{append(ok, "--load-max-rate", "1e9"), "-load-max-rate", nil},
		{append(ok, "--load-max-rate", "NaN"), "-load-max-rate", nil},
		{append(ok, "--load-max-rate", "0"), "-load-max-rate", nil},
		{append(ok, "--load-max-concurrent", "101"), "-load-max-concurrent", nil},
		{append(ok, "--load-max-concurrent", "-1"), "-load-max-concurrent", nil},
		{append(ok, "--load-concurrency", "0"), "-load-concurrency", nil},
		{append(ok, "--load-reports", "101"), "-load-reports", nil},
		{append(ok, "--load-reports", "-1"), "-load-reports", nil},
		{append(ok, "--load-max-duration", "-1s"), "-load-max-duration", nil},
		{append(ok, "--load-max-duration", "2h"), "-load-max-duration", nil},
		// A gRPC load must fit in the grace of an aged connection.
		{append(ok, "--load-max-duration", "5m"), "-max-connection-age-grace", nil},
		{append(ok, "--load-max-duration", "30s", "--max-connection-age-grace", "10s"), "-max-connection-age-grace", nil},
		{ok, "-load-max-rate", []string{"LOAD_MAX_RATE=1e9"}},
		// The shared serving flags (tier).
		{append(ok, "--grpc-addr", ""), "-grpc-addr", nil},
		{append(ok, "--grpc-addr", "127.0.0.1:99999"), "-grpc-addr", nil},
		{append(ok, "--admin-addr", "nope"), "-admin-addr", nil},
		{append(ok, "--pprof"), "-pprof", nil}, // the admin port is off
		{append(ok, "--drain-delay", "-1s"), "-drain-delay", nil},
		{append(ok, "--shutdown-timeout", "0s"), "-shutdown-timeout", nil},
		{append(ok, "--max-connection-age", "1ms"), "-max-connection-age", nil},
		{append(ok, "--max-connection-age-grace", "-1s"), "-max-connection-age-grace", nil},
		{append(ok, "--http-write-timeout", "0s"), "-http-write-timeout", nil},
		{append(ok, "--max-recv-bytes", "1"), "-max-recv-bytes", nil},
		{append(ok, "--max-concurrent-streams", "0"), "-max-concurrent-streams", nil},
		{append(ok, "--log-format", "xml"), "-log-format", nil},
		{append(ok, "--log-level", "loud"), "-log-level", nil},
		{append(ok, "--no-reflection=perhaps"), "-no-reflection", nil},
		{append(ok, "--annotations-deny", strings.Repeat("x,", 101)), "-annotations-deny", nil},
	} {
		t.Run(strings.Join(append(c.env, c.args...), " "), func(t *testing.T) {
			// A frontend that starts instead is stopped by the timeout,
			// and fails the test with its exit code.
			ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, frontend, c.args...)
			cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "GRPC_ADDR=127.0.0.1:0", "HTTP_ADDR=127.0.0.1:0", "DOWNWARD_DIR="}, c.env...)
			out, _ := cmd.CombinedOutput()
			code := cmd.ProcessState.ExitCode()
			lines := strings.Split(strings.TrimSpace(string(out)), "\n")
			if code != 2 || len(lines) != 1 || !strings.HasPrefix(lines[0], "frontend: ") || !strings.Contains(lines[0], c.flag) {
				t.Errorf("exit %d, output %q; want exit 2 and one line naming %s", code, out, c.flag)
			}
		})
	}
}
