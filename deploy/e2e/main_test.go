// Package e2e applies the deploy/ overlays to a real Kubernetes control plane
// (built from the module proxy, see hack/build-bins.sh) with kwok's fake
// nodes and CoreDNS, and checks what the frontend depends on: Pod Security
// admission, rollouts, EndpointSlices, cluster DNS records, and the
// frontend's own discovery code following a scale.
package e2e

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/knowingnode/knowingnode/deploy/e2e/internal/cluster"
)

var (
	cl       *cluster.Cluster
	k8sBin   string // the control-plane binaries, for a test's own cluster.Start
	keepLogs = flag.Bool("keep", false, "keep the cluster's work dir (logs, data) even when every test passes")
)

// deployDir is the repository's deploy/ folder, seen from this package.
const deployDir = ".."

func TestMain(m *testing.M) {
	flag.Parse()
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	ctx := context.Background()
	bin, err := binDir()
	if err != nil {
		fmt.Fprintf(os.Stderr, "e2e: %v\n", err)
		return 1
	}
	k8sBin = bin
	t0 := time.Now()
	c, err := cluster.Start(ctx, cluster.Config{
		BinDir:    bin,
		StagesDir: filepath.Join(bin, "..", "kwok-stages"),
		Nodes:     3,
		Logf: func(format string, args ...any) {
			if testing.Verbose() {
				fmt.Printf(format+"\n", args...)
			}
		},
	})
	if err != nil {
		fmt.Fprintf(os.Stderr, "e2e: %v\n", err)
		if c != nil {
			_ = c.Stop(true)
		}
		return 1
	}
	cl = c
	var phases []string
	for _, p := range c.Phases {
		phases = append(phases, fmt.Sprintf("%s %s", p.Name, p.Took.Round(10*time.Millisecond)))
	}
	summarize("cluster", true, "up in %s on loopback: %d kwok nodes, CoreDNS at %s (%s)",
		time.Since(t0).Round(10*time.Millisecond), len(c.Nodes), c.DNSAddr, strings.Join(phases, ", "))

	code := m.Run()

	keep := code != 0 || *keepLogs
	t1 := time.Now()
	if err := c.Stop(keep); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: stop: %v\n", err)
		code = 1
	}
	if keep {
		fmt.Printf("e2e: cluster logs kept in %s\n", filepath.Join(c.Dir, "logs"))
	}
	summarize("cluster", code == 0, "stopped in %s", time.Since(t1).Round(10*time.Millisecond))
	printSummary()
	return code
}

// binDir returns the control-plane binaries: $KNOWINGNODE_K8S_BIN, or what
// hack/build-bins.sh builds (seconds when cached, ~10 min cold).
func binDir() (string, error) {
	if d := os.Getenv("KNOWINGNODE_K8S_BIN"); d != "" {
		return d, nil
	}
	cmd := exec.Command("hack/build-bins.sh")
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("hack/build-bins.sh: %w", err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	return lines[len(lines)-1], nil
}

// report records the scenario's one line when the test ends, passed, failed
// or stopped by t.Fatal; the test sets *line as it learns things.
func report(t *testing.T, scenario string) *string {
	line := new(string)
	*line = "see the test output"
	t.Cleanup(func() { summarize(scenario, !t.Failed(), "%s", *line) })
	return line
}

var (
	summaryMu    sync.Mutex
	summaryLines []string
)

// summarize records the one-line result of a scenario, printed at the end.
func summarize(scenario string, ok bool, format string, args ...any) {
	status := "PASS"
	if !ok {
		status = "FAIL"
	}
	summaryMu.Lock()
	defer summaryMu.Unlock()
	summaryLines = append(summaryLines, fmt.Sprintf("e2e %-22s %s  %s", scenario, status, fmt.Sprintf(format, args...)))
}

func printSummary() {
	summaryMu.Lock()
	defer summaryMu.Unlock()
	fmt.Println("---- e2e summary ----")
	for _, l := range summaryLines {
		fmt.Println(l)
	}
}
