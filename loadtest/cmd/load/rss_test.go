package main

import (
	"bufio"
	"fmt"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/knowingnode/knowingnode/harness/loopbackpods"
	"github.com/knowingnode/knowingnode/harness/proc"
)

// TestLongRunRSS is the measured run of the memory bound: bin/load at
// 1-second windows over 20 pods, with --plot (windows kept, downsampled past
// plot.MaxPoints) and --json, for LOAD_RSS_MINUTES minutes. It logs the RSS
// every minute and fails when the last is more than 8 MB over the first.
// It is skipped unless LOAD_RSS_MINUTES is set, e.g.
//
//	LOAD_RSS_MINUTES=20 go test ./loadtest/cmd/load/ -run LongRunRSS -v -timeout 30m
func TestLongRunRSS(t *testing.T) {
	minutes, _ := strconv.Atoi(os.Getenv("LOAD_RSS_MINUTES"))
	if minutes < 2 {
		t.Skip("set LOAD_RSS_MINUTES (at least 2) for the long measured run")
	}
	rate := os.Getenv("LOAD_RSS_RATE")
	if rate == "" {
		rate = "200"
	}
	bin := filepath.Join(proc.Build(t, "."), "load")
	ips, port := loopbackpods.Start(t, 20, 61, "pod")
	var addrs []string
	for _, ip := range ips {
		addrs = append(addrs, fmt.Sprintf("%s:%d", ip, port))
	}
	dir := t.TempDir()
	logf, err := os.Create(filepath.Join(dir, "stderr"))
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	plotFile := filepath.Join(dir, "run.png")
	cmd := exec.CommandContext(t.Context(), bin, "--target", "static:///"+strings.Join(addrs, ","), "--balancing", "round_robin",
		"--rate", rate, "--concurrency", "16", "--window", "1s", "--duration", fmt.Sprintf("%dm", minutes),
		"--plot", plotFile, "--json", filepath.Join(dir, "run.jsonl"))
	cmd.Stderr = logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	var rss []int64 // kB, at minute 1, 2, ...
	tick := time.NewTicker(time.Minute)
	defer tick.Stop()
	for done := false; !done; {
		select {
		case <-tick.C:
			kb, err := procStatus(cmd.Process.Pid, "VmRSS")
			if err != nil {
				t.Logf("minute %d: %v", len(rss)+1, err)
				continue
			}
			anon, _ := procStatus(cmd.Process.Pid, "RssAnon")
			rss = append(rss, kb)
			// RssFile is mostly the binary's own pages; RssAnon is the heap.
			t.Logf("minute %d: RSS %d kB (%.1f MB), of it anonymous %d kB", len(rss), kb, float64(kb)/1024, anon)
		case err := <-exited:
			if err != nil {
				t.Fatalf("load: %v", err)
			}
			done = true
		}
	}
	out, _ := os.ReadFile(logf.Name())
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	t.Logf("%d windows; %s", len(lines)-1, lines[len(lines)-1])
	if len(rss) < 2 {
		t.Fatalf("%d RSS samples", len(rss))
	}
	if grow := rss[len(rss)-1] - rss[0]; grow > 8<<10 {
		t.Errorf("RSS grew by %d kB from minute 1 to minute %d", grow, len(rss))
	}
	f, err := os.Open(plotFile)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := png.Decode(f); err != nil {
		t.Errorf("--plot: %v", err)
	}
}

// procStatus reads a kB field of a process's /proc status, e.g. VmRSS.
func procStatus(pid int, field string) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), field+":"); ok {
			return strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		}
	}
	return 0, fmt.Errorf("pid %d: no %s", pid, field)
}
