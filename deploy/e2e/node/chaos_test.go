package node

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/knowingnode/knowingnode/harness/poll"
)

// TestCluster runs every scenario on the one cluster, in an order that
// matters: the three topologies side by side; then the chaos, which disturbs
// the whole cluster; then the EndpointSlice watch against DNS while the
// StatefulSet scales and rolls; then the autoscalers, one tier at a time, since load on
// one tier while another scales would mix causes; then a Helm release of its
// own beside the overlays.
func TestCluster(t *testing.T) {
	t.Run("topologies", topologies)
	t.Run("chaos", chaos)
	t.Run("endpointslices", endpointSlices)
	t.Run("autoscale", autoscale)
	t.Run("balancing", balancing)
	t.Run("helm", helmRelease)
}

// topologies runs the three topologies' scenarios side by side.
func topologies(t *testing.T) {
	for _, tc := range []struct {
		name string
		run  func(*testing.T)
	}{{"deployment", deploymentTopology}, {"daemonset", daemonSetTopology}, {"statefulset", statefulSetTopology}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.run(t)
		})
	}
}

// chaos breaks the cluster's parts one at a time under continuous EACH
// and BALANCED load through the StatefulSet topology's frontend (per-pod
// names: a pod that is really gone shows as that pod's failure). What must
// hold each time: no fan-out fails as a whole, backend calls fail only for
// pods really gone, and afterwards everything is healthy again: EACH answers
// from exactly the pods the API lists as ready.
func chaos(t *testing.T) {
	const node2 = "kne2e-node2"
	base := "" // set by the first scenario that runs
	frontend := func(t *testing.T) string {
		if base == "" {
			base = frontendBase(t, "statefulset")
		}
		return base
	}

	scenario(t, "8 chaos pod", func(t *testing.T) string {
		victim := "backend-sts-1"
		st, took := underLoad(t, frontend(t), func() error {
			_, err := kubectl("-n", namespace, "delete", "pod", victim, "--grace-period=0", "--force", "--wait=false")
			return err
		})
		onlyFailed(t, st, victim)
		return fmt.Sprintf("%s deleted with --grace-period=0, back in %.0fs; %s", victim, took.Seconds(), st)
	})

	scenario(t, "8 chaos coredns", func(t *testing.T) string {
		pid := pidOf(t, "coredns")
		st, took := underLoad(t, frontend(t), func() error {
			if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
				return err
			}
			time.Sleep(20 * time.Second)
			return syscall.Kill(pid, syscall.SIGCONT)
		})
		// The frontends keep the last good endpoints through the outage.
		onlyFailed(t, st)
		return fmt.Sprintf("CoreDNS stopped (SIGSTOP) for 20s, all healthy %.0fs after; %s", took.Seconds(), st)
	})

	scenario(t, "8 chaos containerd", func(t *testing.T) string {
		st, took := underLoad(t, frontend(t), func() error {
			// The runtime dies first, then the kubelet: the containers
			// (under their shims) go on serving; both come back.
			for _, d := range []string{"containerd-node2", "kubelet-node2"} {
				if err := syscall.Kill(pidOf(t, d), syscall.SIGKILL); err != nil {
					return fmt.Errorf("kill -9 %s: %w", d, err)
				}
				time.Sleep(3 * time.Second)
			}
			_, err := runCmd(repo, []string{"STATE=" + state}, "deploy/e2e/node/cluster/restart.sh", "containerd-node2", "kubelet-node2")
			if err != nil {
				return err
			}
			return poll.Until(context.Background(), waitLimit, time.Second, node2+" Ready again", func(context.Context) error {
				out, err := kubectl("get", "node", node2, "-o", `jsonpath={.status.conditions[?(@.type=="Ready")].status}`)
				if err == nil && strings.TrimSpace(out) != "True" {
					err = fmt.Errorf("Ready=%q", out)
				}
				return err
			})
		})
		onlyFailed(t, st)
		return fmt.Sprintf("kill -9 containerd and kubelet of %s, restarted, all healthy %.0fs after; %s", node2, took.Seconds(), st)
	})

	scenario(t, "8 chaos drain", func(t *testing.T) string {
		before, err := pods(namespace, stsSel)
		if err != nil {
			t.Fatal(err)
		}
		var evicted []string
		for _, p := range before {
			if p.Spec.NodeName == node2 {
				evicted = append(evicted, p.Metadata.Name)
			}
		}
		defer kubectl("uncordon", node2)
		st, took := underLoad(t, frontend(t), func() error {
			if _, err := kubectl("drain", node2, "--ignore-daemonsets", "--delete-emptydir-data", "--timeout=150s"); err != nil {
				return err
			}
			_, err := kubectl("uncordon", node2)
			return err
		})
		// An evicted pod drains (DRAINING, not failed) and comes back under
		// its own name: calls may fail only for those pods.
		onlyFailed(t, st, evicted...)
		return fmt.Sprintf("drained %s (StatefulSet pods evicted: %v), all healthy %.0fs after; %s", node2, evicted, took.Seconds(), st)
	})
}

// underLoad runs break under load and then waits until the frontend answers
// EACH from exactly the ready pods of the API again; it returns what the
// load saw and how long from the break to healthy.
func underLoad(t *testing.T, base string, breakIt func() error) (*loadStats, time.Duration) {
	t.Helper()
	load := startLoad(t, base, false)
	time.Sleep(2 * time.Second) // load before the break, for contrast
	t0 := time.Now()
	berr := breakIt()
	herr := poll.Until(context.Background(), 2*waitLimit, 500*time.Millisecond, "EACH to answer from exactly the ready pods again", func(context.Context) error {
		want, err := readyPods(namespace, stsSel)
		if err != nil {
			return err
		}
		if len(want) != 3 {
			return fmt.Errorf("%d ready StatefulSet pods, want 3", len(want))
		}
		r, err := fanout(fresh, base, "mode=EACH")
		if err != nil {
			return err
		}
		return exactly(r, want)
	})
	took := time.Since(t0)
	st := load.stop()
	if berr != nil {
		t.Fatal(berr)
	}
	if herr != nil {
		t.Fatalf("not healthy again: %v", herr)
	}
	return st, took
}

// onlyFailed fails the test for any EACH result that failed for another pod
// than gone.
func onlyFailed(t *testing.T, st *loadStats, gone ...string) {
	t.Helper()
	for who, n := range st.failedPods {
		ok := false
		for _, g := range gone {
			ok = ok || who == g
		}
		if !ok {
			t.Errorf("%d EACH calls failed for %s, which never went away", n, who)
		}
	}
}

// pidOf is the pid of one of the cluster's daemons (up.sh's pid files).
func pidOf(t *testing.T, daemon string) int {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(state, "pids", daemon))
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatalf("pid file of %s: %v", daemon, err)
	}
	return pid
}
