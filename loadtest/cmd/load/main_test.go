package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/knowingnode/knowingnode/harness/loopbackpods"
	"github.com/knowingnode/knowingnode/harness/proc"
)

// topology is three real backends on two nodes and a real frontend over
// them; the binaries, bin/load among them, are in dir.
type topology struct {
	dir      string
	backends []string // gRPC addresses
	grpc     string   // the frontend's
	http     string
}

func startTopology(t *testing.T) *topology {
	t.Helper()
	tp := &topology{dir: proc.Build(t, "../../../backend", "../../../frontend", ".")}
	start := func(name string, env []string, args ...string) *proc.Process {
		p := proc.Start(t, filepath.Join(tp.dir, name), append([]string{"DRAIN_DELAY=0s"}, env...), args...)
		t.Cleanup(func() { p.Stop(t) })
		return p
	}
	for i, node := range []string{"node-a", "node-b", "node-a"} {
		b := start("backend", []string{fmt.Sprintf("POD_NAME=backend-%d", i), "NODE_NAME=" + node},
			"--grpc-addr", "127.0.0.1:0", "--admin-addr", "", "--downward-dir", "")
		tp.backends = append(tp.backends, b.Addrs["grpc"])
	}
	fe := start("frontend", []string{"POD_NAME=frontend-0", "NODE_NAME=node-a"},
		"--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0", "--downward-dir", "",
		"--target", "backends=static:///"+strings.Join(tp.backends, ","))
	tp.grpc, tp.http = fe.Addrs["grpc"], fe.Addrs["http"]
	return tp
}

// line is a JSON line of --json, window or summary.
type line struct {
	Type         string
	Sent, OK     int64
	Failed       int64
	ByPod        map[string]int64
	BackendByPod map[string]int64
}

func TestLoadEachCall(t *testing.T) {
	tp := startTopology(t)
	for _, tc := range []struct {
		call, target string
		extra        []string
		pods         []string // answering pods
		backendPods  int
	}{
		{"identity", "static:///" + strings.Join(tp.backends, ","), []string{"--balancing", "round_robin"}, []string{"backend-0", "backend-1", "backend-2"}, 0},
		{"fanout", tp.grpc, nil, []string{"frontend-0"}, 3},
		{"rest", "http://" + tp.http, nil, []string{"frontend-0"}, 3},
	} {
		t.Run(tc.call, func(t *testing.T) {
			dir := t.TempDir()
			jsonFile, plotFile := filepath.Join(dir, "run.jsonl"), filepath.Join(dir, "run.png")
			cmd := exec.Command(filepath.Join(tp.dir, "load"), append([]string{"--target", tc.target, "--call", tc.call,
				"--rate", "30", "--concurrency", "4", "--duration", "2500ms", "--json", jsonFile, "--plot", plotFile}, tc.extra...)...)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			if err := cmd.Run(); err != nil {
				t.Fatalf("load: %v\n%s", err, stderr.String())
			}
			t.Logf("%s", stderr.String())
			lines := readLines(t, jsonFile)
			var windows int
			var sent int64
			for _, l := range lines[:len(lines)-1] {
				if l.Type != "window" {
					t.Fatalf("line of type %q before the summary", l.Type)
				}
				windows++
				sent += l.Sent
			}
			sum := lines[len(lines)-1]
			if sum.Type != "summary" || windows < 2 || sent != sum.Sent {
				t.Fatalf("%d windows sending %d, then a %q line sending %d; want windows adding up to the summary", windows, sent, sum.Type, sum.Sent)
			}
			if r := float64(sum.Sent) / (30 * 2.5); r < 0.8 || r > 1.1 || sum.OK != sum.Sent {
				t.Errorf("sent %d (%.2f of 75), ok %d", sum.Sent, r, sum.OK)
			}
			for _, pod := range tc.pods {
				if share := float64(sum.ByPod[pod]) / float64(sum.OK); share < 0.8/float64(len(tc.pods))-0.05 {
					t.Errorf("pod %s took %.2f of the calls (%v)", pod, share, sum.ByPod)
				}
			}
			if len(sum.ByPod) != len(tc.pods) || len(sum.BackendByPod) != tc.backendPods {
				t.Errorf("by pod %v, by backend pod %v; want %v and %d backend pods", sum.ByPod, sum.BackendByPod, tc.pods, tc.backendPods)
			}
			f, err := os.Open(plotFile)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			img, err := png.Decode(f)
			if err != nil {
				t.Fatalf("--plot wrote no valid PNG: %v", err)
			}
			if b := img.Bounds(); b.Dx() < 300 || b.Dy() < 300 {
				t.Errorf("plot is %v", b)
			}
			if !strings.Contains(stderr.String(), "summary:") || strings.Count(stderr.String(), "/s  p50") != windows {
				t.Errorf("want one live line per window and a summary on stderr:\n%s", stderr.String())
			}
		})
	}
}

func readLines(t *testing.T, file string) []line {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var ls []line
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var l line
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatalf("%s: %v in %s", file, err, sc.Text())
		}
		ls = append(ls, l)
	}
	if len(ls) == 0 {
		t.Fatalf("%s is empty", file)
	}
	return ls
}

func TestBadFlagsExit2(t *testing.T) {
	dir := proc.Build(t, ".")
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"--call", "identity"}, []string{"--target"}},
		{[]string{"--target", "x:1", "--call", "grpc", "--rate", "-5"}, []string{"--call", `"grpc"`, "--rate", "-5"}},
		{[]string{"--target", "x:1", "--balancing", "random", "--connections", "0"}, []string{"--policy", "least_request", "--connections", "1..1000"}},
		{[]string{"--target", "x:1", "--policy", "ring_hash", "--hash-keys", "0", "--wrr-update", "10ms"}, []string{"--hash-keys", "--wrr-update", "100ms"}},
		{[]string{"--target", "x:1", "--duration", "banana"}, []string{"-duration", "banana"}},
		{[]string{"--target", "x:1", "--nope"}, []string{"-nope"}},
		{[]string{"--target", "x:1", "--rate", "NaN"}, []string{"--rate", "NaN", "0..1e+06"}},
		{[]string{"--target", "http://127.0.0.1:1"}, []string{"--target", "--call rest"}},
		// Output files are checked before the run (10 s by default), not after it.
		{[]string{"--target", "127.0.0.1:1", "--plot", "/nonexistent/run.png"}, []string{"--plot", "/nonexistent/run.png", "no such file"}},
		{[]string{"--target", "127.0.0.1:1", "--json", "/nonexistent/run.jsonl"}, []string{"--json", "/nonexistent/run.jsonl"}},
	} {
		cmd := exec.Command(filepath.Join(dir, "load"), tc.args...)
		start := time.Now()
		out, err := cmd.CombinedOutput()
		if took := time.Since(start); took > 5*time.Second {
			t.Errorf("%v: refused after %v: the flags were not checked before the run", tc.args, took)
		}
		if strings.Contains(string(out), "<nil>") {
			t.Errorf("%v: %s", tc.args, out)
		}
		if code := cmd.ProcessState.ExitCode(); code != 2 {
			t.Errorf("%v: exit %d (%v), want 2; output %s", tc.args, code, err, out)
		}
		if n := strings.Count(strings.TrimSpace(string(out)), "\n"); n != 0 {
			t.Errorf("%v: %d lines, want one: %s", tc.args, n+1, out)
		}
		for _, w := range tc.want {
			if !strings.Contains(string(out), w) {
				t.Errorf("%v: %q does not name %s", tc.args, out, w)
			}
		}
	}
}

// --rate 1 --duration 1s sends its one call, at the start, and exits 0.
func TestOneCallPerSecondForOneSecond(t *testing.T) {
	bin := filepath.Join(proc.Build(t, "."), "load")
	ips, port := loopbackpods.Start(t, 1, 91, "pod")
	cmd := exec.Command(bin, "--target", fmt.Sprintf("%s:%d", ips[0], port), "--rate", "1", "--duration", "1s", "--json", "-")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("load: %v\n%s", err, out)
	}
	var sum line
	for l := range strings.SplitSeq(strings.TrimSpace(string(out)), "\n") {
		if err := json.Unmarshal([]byte(l), &sum); err != nil {
			t.Fatalf("%v in %s", err, l)
		}
	}
	if sum.Type != "summary" || sum.Sent != 1 || sum.OK != 1 {
		t.Errorf("last line %+v; want a summary of 1 call sent, ok", sum)
	}
}
