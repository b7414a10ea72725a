package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/knowingnode/knowingnode/harness/loopbackpods"
	"github.com/knowingnode/knowingnode/harness/proc"
)

// distSummary is the fields of a distributed summary line the tests read.
type distSummary struct {
	Type          string
	Sent, OK      int64
	ByPod         map[string]int64
	Workers       int
	Started       int
	StartSkew     time.Duration
	Latency       struct{ P50, P99, Max time.Duration }
	WorkerResults []struct{ Name string }
}

func lastLine(t *testing.T, file string) (distSummary, int) {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 4<<20)
	var s distSummary
	n := 0
	for sc.Scan() {
		n++
		if err := json.Unmarshal(sc.Bytes(), &s); err != nil {
			t.Fatalf("%s: %v", file, err)
		}
	}
	return s, n
}

// Bad flags of the distributed modes: exit 2, one line naming the problem.
func TestDistributedBadFlags(t *testing.T) {
	bin := filepath.Join(proc.Build(t, "."), "load")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"coordinate", "--workers-target", "static:///127.0.0.1:1", "--workers", "0"}, "workers 0 is outside 1..1000"},
		{[]string{"coordinate", "--workers-target", "static:///127.0.0.1:1", "--rate", "0"}, "open loop"},
		{[]string{"coordinate", "--workers-target", "nope://x"}, "--workers-target"},
		{[]string{"coordinate", "--workers-target", "static:///127.0.0.1:1", "--ready-policy", "maybe"}, `ready policy "maybe"`},
		{[]string{"worker", "--", "--target", "x:1", "--call", "grpc"}, "--call"},
		{[]string{"worker", "stray"}, "after --"},
		{[]string{"merge"}, "no file to merge"},
	} {
		cmd := exec.Command(bin, tc.args...)
		out, _ := cmd.CombinedOutput()
		if code := cmd.ProcessState.ExitCode(); code != 2 || strings.Count(strings.TrimSpace(string(out)), "\n") != 0 || !strings.Contains(string(out), tc.want) {
			t.Errorf("%v: exit %d, %q; want exit 2 and one line naming %q", tc.args, code, out, tc.want)
		}
	}
}

// Two worker processes, a coordinator process, then the offline merge of
// the workers' own files: the same calls, the same quantiles.
func TestDistributedProcesses(t *testing.T) {
	dir := proc.Build(t, ".")
	bin := filepath.Join(dir, "load")
	pods, port := loopbackpods.Start(t, 3, 71, "backend")
	var list []string
	for _, ip := range pods {
		list = append(list, fmt.Sprintf("%s:%d", ip, port))
	}
	out := t.TempDir()
	var workers, files []string
	for i := range 2 {
		file := filepath.Join(out, fmt.Sprintf("worker-%d.jsonl", i))
		w := proc.Start(t, bin, nil, "worker", "--listen", "127.0.0.1:0", "--name", fmt.Sprintf("worker-%d", i), "--target-name", "backends",
			"--json", file, "--", "--target", "static:///"+strings.Join(list, ","), "--balancing", "round_robin")
		workers = append(workers, w.Addrs["grpc"])
		files = append(files, file)
	}
	coordinate := func(extra ...string) (int, string) {
		args := append([]string{"coordinate", "--workers-target", "static:///" + strings.Join(workers, ","), "--workers", "2",
			"--target-name", "backends", "--rate", "200", "--duration", "2s", "--window", "500ms", "--start-delay", "300ms"}, extra...)
		cmd := exec.Command(bin, args...)
		b, _ := cmd.CombinedOutput()
		return cmd.ProcessState.ExitCode(), string(b)
	}
	merged := filepath.Join(out, "merged.jsonl")
	code, text := coordinate("--json", merged, "--plot", filepath.Join(out, "merged.png"), "--max-p99", "10s")
	if code != 0 {
		t.Fatalf("coordinate: exit %d\n%s", code, text)
	}
	t.Logf("%s", text)
	sum, n := lastLine(t, merged)
	if sum.Type != "summary" || sum.Started != 2 || n < 5 || len(sum.ByPod) != 3 || len(sum.WorkerResults) != 2 {
		t.Fatalf("%d lines, summary %+v", n, sum)
	}
	if r := float64(sum.Sent) / 400; r < 0.9 || r > 1.02 {
		t.Errorf("sent %d of 400", sum.Sent)
	}
	if _, err := os.Stat(filepath.Join(out, "merged.png")); err != nil {
		t.Errorf("plot: %v", err)
	}

	// The offline merge of the workers' files gives the coordinator's result.
	offline := filepath.Join(out, "offline.jsonl")
	cmd := exec.Command(bin, append([]string{"merge", "--json", offline}, files...)...)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("merge: %v\n%s", err, b)
	}
	off, _ := lastLine(t, offline)
	if off.Sent != sum.Sent || off.OK != sum.OK || off.Latency != sum.Latency {
		t.Errorf("offline merge: sent %d ok %d %+v; coordinator: %d %d %+v", off.Sent, off.OK, off.Latency, sum.Sent, sum.OK, sum.Latency)
	}
	// The same file twice is refused, and so is a second run's file beside
	// the first run's.
	if b, err := exec.Command(bin, "merge", files[0], files[0]).CombinedOutput(); err == nil || !strings.Contains(string(b), "named twice") {
		t.Errorf("same file twice: %v %s", err, b)
	}

	// A threshold broken: exit 3, naming it.
	code, text = coordinate("--max-p99", "1us")
	if code != 3 || !strings.Contains(text, "above --max-p99") {
		t.Errorf("--max-p99 1us: exit %d\n%s", code, text)
	}
	// The workers' files now hold two runs each.
	if b, err := exec.Command(bin, append([]string{"merge"}, files...)...).CombinedOutput(); err == nil || !strings.Contains(string(b), "one file per worker") {
		t.Errorf("files holding two runs: %v %s", err, b)
	}
}
