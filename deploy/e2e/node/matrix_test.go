package node

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	knowingnodev1 "github.com/knowingnode/knowingnode/gen/knowingnode/v1"
	"github.com/knowingnode/knowingnode/harness/apijson"
	"github.com/knowingnode/knowingnode/harness/browser"
	"github.com/knowingnode/knowingnode/harness/poll"
)

// feDSSel selects the daemonset topology's frontends, the matrix's rows:
// peers of each other through the headless Service frontend-peers-daemonset.
const feDSSel = "component=frontend,controlling=daemonset"

// TestMatrix: every frontend of the daemonset topology to every backend
// DaemonSet pod (a 2 x N matrix on the two nodes), then the chaos cell test:
// one frontend's path to one backend pod dropped by an iptables rule in that
// frontend pod's network namespace (both nodes share the host's; the pod's
// is where its node's traffic to the pod starts), and exactly those cells
// fail. Runs after TestCluster in make e2e-node, or alone:
// go test -run TestMatrix (with KNOWINGNODE_NODE_E2E=1, as root). Last, the
// DNS against EndpointSlices disagreements the EndpointSlice frontends
// recorded through TestCluster's scale and rollout scenarios.
func TestMatrix(t *testing.T) {
	var base string
	scenario(t, "matrix daemonset: frontends x backend pods", func(t *testing.T) string {
		base = frontendBase(t, "daemonset")
		m, fes, bes := healthyMatrix(t, base)
		for _, r := range m.GetRows() {
			i := slices.IndexFunc(fes, func(p pod) bool { return p.Metadata.Name == r.GetKey() })
			if i < 0 || r.GetNodeName() != fes[i].Spec.NodeName {
				t.Errorf("row %s on %s: not a ready frontend on that node (%v)", r.GetKey(), r.GetNodeName(), names(fes))
			}
		}
		for _, c := range m.GetColumns() {
			i := slices.IndexFunc(bes, func(p pod) bool { return p.Metadata.Name == c.GetKey() })
			if i < 0 || c.GetNodeName() != bes[i].Spec.NodeName {
				t.Errorf("column %s on %s: not a ready backend on that node (%v)", c.GetKey(), c.GetNodeName(), names(bes))
			}
		}
		s := m.GetPaths()[0].GetSummary()
		nodes := map[string]bool{}
		for _, r := range m.GetRows() {
			nodes[r.GetNodeName()] = true
		}
		out := envOr("KNE2E_RESULTS", filepath.Join(repo, "bin", "e2e-node", time.Now().UTC().Format("20060102T150405Z")))
		page := matrixPage(t, base, filepath.Join(out, "matrix", "matrix.png"), len(m.GetRows())*len(m.GetColumns()))
		// Each node is its own zone here (cluster/up.sh): cross-node is cross-zone.
		return fmt.Sprintf("%d x %d (rows on %d nodes), %d calls a cell, all OK; same-node p50 %v p99 %v (%d calls); cross-node p50 %v p99 %v (%d calls); %s",
			len(m.GetRows()), len(m.GetColumns()), len(nodes), m.GetCalls(),
			s.GetSameNode().GetLatencyP50().AsDuration(), s.GetSameNode().GetLatencyP99().AsDuration(), s.GetSameNode().GetOk(),
			s.GetCrossZone().GetLatencyP50().AsDuration(), s.GetCrossZone().GetLatencyP99().AsDuration(), s.GetCrossZone().GetOk(), page)
	})

	scenario(t, "matrix chaos: drop one node -> pod path", func(t *testing.T) string {
		if base == "" {
			base = frontendBase(t, "daemonset")
		}
		_, fes, bes := healthyMatrix(t, base)
		fe := fes[0]
		// The victim pod: on another node than the frontend when there is one.
		be := bes[0]
		for _, b := range bes {
			if b.Spec.NodeName != fe.Spec.NodeName {
				be = b
				break
			}
		}
		pid := pidOfPod(t, fe.Metadata.Name)
		rule := []string{"OUTPUT", "-d", be.Status.PodIP, "-p", "tcp", "--dport", "9090", "-j", "DROP"}
		iptables := func(op string) error {
			_, err := runCmd(repo, nil, "nsenter", append([]string{"-t", strconv.Itoa(pid), "-n", "iptables", op}, rule...)...)
			return err
		}
		if err := iptables("-I"); err != nil {
			t.Fatalf("insert the rule in %s's network namespace: %v", fe.Metadata.Name, err)
		}
		removed := false
		remove := func() {
			if !removed {
				removed = true
				if err := iptables("-D"); err != nil {
					t.Errorf("delete the rule: %v", err)
				}
			}
		}
		defer remove()

		var m knowingnodev1.MatrixResponse
		if err := apijson.Get(t.Context(), fresh, base+"/v1/matrix?calls=3&timeout=50s", &m); err != nil {
			t.Fatal(err)
		}
		var failed []string
		codes := map[string]int32{}
		for _, c := range m.GetPaths()[0].GetCells() {
			dropped := c.GetRow() == fe.Metadata.Name && (c.GetColumn() == be.Metadata.Name || strings.HasPrefix(c.GetColumn(), be.Status.PodIP+":"))
			switch {
			case dropped:
				if c.GetOk() != 0 || (c.GetCode() != "DEADLINE_EXCEEDED" && c.GetCode() != "UNAVAILABLE") {
					t.Errorf("dropped path %s -> %s: %v; want every call DEADLINE_EXCEEDED or UNAVAILABLE", c.GetRow(), c.GetColumn(), c)
				}
				failed = append(failed, c.GetRow()+"->"+c.GetColumn())
				for k, n := range c.GetByCode() {
					codes[k] += n
				}
			case c.GetCode() != "OK" || c.GetOk() != m.GetCalls():
				t.Errorf("%s -> %s: %v; only the dropped path may fail", c.GetRow(), c.GetColumn(), c)
			}
		}
		if len(failed) != 1 {
			t.Errorf("failed cells %v, want exactly %s -> %s", failed, fe.Metadata.Name, be.Metadata.Name)
		}
		for _, r := range m.GetRows() {
			if r.GetError() != "" {
				t.Errorf("row %s: %s; a dropped path fails cells, never a row", r.GetKey(), r.GetError())
			}
		}
		remove()
		start := time.Now()
		healthyMatrix(t, base)
		return fmt.Sprintf("%s (%s) -/-> %s (%s) by iptables in the pod's netns: failed cells exactly %v, codes %v, %d cells OK; all OK %.0fs after the rule went",
			fe.Metadata.Name, fe.Spec.NodeName, be.Metadata.Name, be.Spec.NodeName, failed, codes,
			len(m.GetPaths()[0].GetCells())-len(failed), time.Since(start).Seconds())
	})

	scenario(t, "matrix staleness: DNS against EndpointSlices", func(t *testing.T) string {
		// The EndpointSlice scenarios' frontends (TestCluster) watch one
		// Service both ways; their trackers saw the scale and rollout.
		fes, err := readyPods(namespace, "component=frontend,controlling=endpointslices")
		if err != nil || len(fes) == 0 {
			t.Skipf("no frontend-endpointslices (TestCluster's endpointslices scenarios did not run): %v", err)
		}
		var lens []time.Duration
		open := 0
		for _, fe := range fes {
			var l knowingnodev1.ListDisagreementsResponse
			if err := apijson.Get(t.Context(), fresh, "http://"+fe.Status.PodIP+":8080/v1/disagreements", &l); err != nil {
				t.Fatal(err)
			}
			for _, d := range l.GetDisagreements() {
				if d.GetEnd() == nil {
					open++
					continue
				}
				lens = append(lens, d.GetDuration().AsDuration())
			}
		}
		if len(lens) == 0 {
			return fmt.Sprintf("no DNS against EndpointSlices disagreement recorded by %d frontends (%d open)", len(fes), open)
		}
		slices.Sort(lens)
		return fmt.Sprintf("%d disagreements ended over %d frontends (%d open): min %v, median %v, max %v",
			len(lens), len(fes), open, lens[0].Round(time.Millisecond), lens[len(lens)/2].Round(time.Millisecond), lens[len(lens)-1].Round(time.Millisecond))
	})
}

// healthyMatrix waits until a matrix through base has a row per ready
// daemonset frontend and a column per ready backend DaemonSet pod, every
// cell OK, and returns it with those pods.
func healthyMatrix(t *testing.T, base string) (*knowingnodev1.MatrixResponse, []pod, []pod) {
	t.Helper()
	var (
		m        *knowingnodev1.MatrixResponse
		fes, bes []pod
	)
	poll.T(t, waitLimit, "a healthy matrix, every frontend x every backend pod", func(ctx context.Context) error {
		var err error
		if fes, err = readyPods(namespace, feDSSel); err != nil {
			return err
		}
		if bes, err = readyPods(dsNS, dsSel); err != nil {
			return err
		}
		if len(fes) < 2 || len(bes) != numNodes {
			return fmt.Errorf("%d frontends, %d backends ready; want 2 and %d", len(fes), len(bes), numNodes)
		}
		m = &knowingnodev1.MatrixResponse{}
		if err := apijson.Get(ctx, fresh, base+"/v1/matrix?calls=3", m); err != nil {
			return err
		}
		if len(m.GetRows()) != len(fes) || len(m.GetColumns()) != len(bes) || len(m.GetPaths()) != 1 {
			return fmt.Errorf("%d x %d matrix, want %d x %d", len(m.GetRows()), len(m.GetColumns()), len(fes), len(bes))
		}
		for _, c := range m.GetPaths()[0].GetCells() {
			if c.GetCode() != "OK" || c.GetOk() != 3 {
				return fmt.Errorf("cell %s -> %s: %s (%d of %d ok)", c.GetRow(), c.GetColumn(), c.GetCode(), c.GetOk(), c.GetCalls())
			}
		}
		return nil
	})
	slices.SortFunc(fes, func(a, b pod) int {
		return strings.Compare(a.Spec.NodeName+a.Metadata.Name, b.Spec.NodeName+b.Metadata.Name)
	})
	return m, fes, bes
}

// pidOfPod is the host PID of the process whose environment says it is
// the pod (the Downward API's POD_NAME): a door into its network namespace.
func pidOfPod(t *testing.T, name string) int {
	t.Helper()
	dirs, err := filepath.Glob("/proc/[0-9]*/environ")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range dirs {
		b, err := os.ReadFile(f)
		if err != nil {
			continue // gone, or a kernel thread
		}
		if slices.Contains(strings.Split(string(b), "\x00"), "POD_NAME="+name) {
			pid, err := strconv.Atoi(filepath.Base(filepath.Dir(f)))
			if err == nil {
				return pid
			}
		}
	}
	t.Fatalf("no process of pod %s on this host", name)
	return 0
}

// matrixPage opens the frontend's matrix page in headless Chromium, waits
// for a whole matrix with every one of cells OK, and keeps a screenshot in
// file (docs/matrix.png is one).
func matrixPage(t *testing.T, base, file string, cells int) string {
	t.Helper()
	ctx := browser.New(t, true, 3*time.Minute).Ctx
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(1280, 900), chromedp.Navigate(base+"/matrix.html?live=1")); err != nil {
		t.Fatalf("open the matrix page: %v", err)
	}
	ok := fmt.Sprintf(`Number(document.getElementById("mx-result").dataset.generation) >= 1 &&
		document.querySelectorAll("[data-testid=mx-cell][data-code=OK]").length === %d`, cells)
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](ok, chromedp.WithPollingTimeout(60*time.Second))); err != nil {
		n, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.getElementById("mx-paths")?.innerText || ""`))
		t.Fatalf("the matrix page never showed %d OK cells: %v\n%s", cells, err, n)
	}
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, png, 0o644); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("the page shows the %d cells OK (%s)", cells, file)
}
