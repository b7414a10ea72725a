package node

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/knowingnode/knowingnode/harness/poll"
	"github.com/knowingnode/knowingnode/internal/load/dist"
)

// Distributed load (internal/load/dist) on the real two nodes, with
// deploy/components/loadtest/distributed as a user adds it: two workers on
// different nodes as one test, then one of them killed mid-run. Runnable
// alone: go test -run TestDistributedLoad (with make e2e-node's cluster).
// After TestCluster, so its load mixes with no other scenario's.
func TestDistributedLoad(t *testing.T) {
	out := envOr("KNE2E_RESULTS", filepath.Join(repo, "bin", "e2e-node", time.Now().UTC().Format("20060102T150405Z")))
	scenario(t, "distributed load", func(t *testing.T) string {
		r := runDistributed(t, filepath.Join(out, "distributed"), distBackends(), nil)
		return r.line(t, false)
	})
	// The one-pod load Job (deploy/components/loadtest) that the
	// autoscale scenarios replaced with two workers: still a product.
	scenario(t, "load job (one pod)", func(t *testing.T) string {
		r := runLoadJob(t, filepath.Join(out, "job"), "one", map[string]string{
			"LOAD_TARGET": "dns:///backend-sts.knowingnode.svc.cluster.local:9090", "LOAD_CALL": "identity",
			"LOAD_BALANCING": "round_robin", "LOAD_REFRESH": "1s", "LOAD_RATE": "300", "LOAD_DURATION": "10s",
		})
		if r.sum.Failed != 0 || len(r.sum.ByPod) < 2 {
			t.Errorf("the load Job: %d failed %v, pods %v; want none failed, every backend pod called", r.sum.Failed, r.sum.ByCode, r.sum.ByPod)
		}
		if q := r.sum.Rate / 300; q < 0.95 || q > 1.05 {
			t.Errorf("the load Job achieved %.1f/s of 300 asked", r.sum.Rate)
		}
		return fmt.Sprintf("load job: %d calls, %.1f/s of 300 asked, %d pods, p99 %v", r.sum.Sent, r.sum.Rate, len(r.sum.ByPod), r.sum.Latency.P99)
	})
	scenario(t, "distributed load lost worker", func(t *testing.T) string {
		r := runDistributed(t, filepath.Join(out, "distributed-lost"), distBackends(), func(t *testing.T) {
			// Kill worker 1 ten seconds into the run, as a node's loss would.
			time.Sleep(10 * time.Second)
			if _, err := kubectl("-n", namespace, "delete", "pod", "-l", "batch.kubernetes.io/job-completion-index=1,app.kubernetes.io/name=knowingnode-load-worker",
				"--grace-period=0", "--force", "--wait=false"); err != nil {
				t.Error(err)
			}
		})
		return r.line(t, true)
	})
}

const (
	distRate     = 600
	distDuration = 25 * time.Second
)

// distRun is the coordinator's merged output.
type distRun struct {
	windows []dist.Window
	sum     struct {
		dist.Window
		Run            string              `json:"run"`
		StartSkew      time.Duration       `json:"startSkew"`
		Note           string              `json:"note"`
		WorkerResults  []dist.WorkerResult `json:"workerResults"`
		GeneratorBound int                 `json:"generatorBoundWindows"`
	}
	took time.Duration
}

// distConfig is one distributed run: the workers' count and what they load
// (the workers' env), the coordinator's settings (its env: rate over all
// workers, concurrency per worker, duration).
type distConfig struct {
	workers     int
	worker      map[string]string
	coordinator map[string]string
	timeout     time.Duration // for the coordinator to finish
}

// distBackends: 2 workers at distRate loading the StatefulSet's backends
// through its headless Service.
func distBackends() distConfig {
	return distConfig{
		workers: 2,
		worker: map[string]string{"LOAD_TARGET": "dns:///backend-sts.knowingnode.svc.cluster.local:9090",
			"LOAD_BALANCING": "round_robin", "LOAD_REFRESH": "1s"},
		coordinator: map[string]string{"LOAD_RATE": fmt.Sprint(distRate), "LOAD_DURATION": distDuration.String()},
		timeout:     distDuration + 4*time.Minute,
	}
}

// envYAML is env as a container's env list, sorted, at indent.
func envYAML(env map[string]string, indent string) string {
	var lines []string
	for _, k := range slices.Sorted(maps.Keys(env)) {
		lines = append(lines, fmt.Sprintf("%s- {name: %s, value: %q}", indent, k, env[k]))
	}
	return strings.Join(lines, "\n")
}

// runDistributed applies the component with c's workers and settings, runs
// during (if any) while the run goes, and reads the coordinator's JSON
// lines, which are also written to out/coordinator.jsonl.
func runDistributed(t *testing.T, out string, c distConfig, during func(*testing.T)) distRun {
	dir := filepath.Join(work, "distload-"+filepath.Base(out))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	rel, err := filepath.Rel(dir, filepath.Join(repo, "deploy/components/loadtest/distributed"))
	if err != nil {
		t.Fatal(err)
	}
	k := fmt.Sprintf(`apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
components:
  - %s
images:
  - name: knowingnode
    newTag: %s
patches:
  - patch: |-
      apiVersion: batch/v1
      kind: Job
      metadata: {name: load-workers, namespace: %[3]s}
      spec:
        completions: %[4]d
        parallelism: %[4]d
        template:
          spec:
            containers:
              - name: worker
                env:
%[5]s
                resources: {requests: {cpu: 200m}}
  - patch: |-
      apiVersion: batch/v1
      kind: Job
      metadata: {name: load-coordinator, namespace: %[3]s}
      spec:
        template:
          spec:
            containers:
              - name: coordinator
                env:
                  - {name: LOAD_WORKERS, value: "%[4]d"}
                  - {name: LOAD_READY_TIMEOUT, value: 2m}
%[6]s
`, rel, strings.TrimPrefix(imageTag, "knowingnode:"), namespace, c.workers,
		envYAML(c.worker, "                  "), envYAML(c.coordinator, "                  "))
	if err := os.WriteFile(filepath.Join(dir, "kustomization.yaml"), []byte(k), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { kubectl("delete", "-k", dir, "--wait=true", "--ignore-not-found") })
	begin := time.Now()
	if _, err := kubectl("apply", "-k", dir); err != nil {
		t.Fatal(err)
	}
	if during != nil {
		// Once the workers run: the coordinator's first window is out.
		err := poll.Until(t.Context(), 3*time.Minute, time.Second, "the coordinator's first window", func(context.Context) error {
			logs, err := kubectl("-n", namespace, "logs", "job/load-coordinator")
			if err != nil || !strings.Contains(logs, `"type":"window"`) {
				return fmt.Errorf("no window yet: %v", err)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		during(t)
	}
	job := "job/load-coordinator"
	err = poll.Until(t.Context(), c.timeout, 2*time.Second, job+" to finish", func(context.Context) error {
		st, err := kubectl("-n", namespace, "get", job, "-o", "jsonpath={.status.succeeded}/{.status.failed}")
		if err != nil {
			return err
		}
		if strings.TrimSpace(st) == "1/" || strings.HasSuffix(strings.TrimSpace(st), "/1") {
			return nil
		}
		return fmt.Errorf("succeeded/failed %q", st)
	})
	logs, lerr := kubectl("-n", namespace, "logs", job)
	if err != nil || lerr != nil {
		t.Fatalf("%v %v\n%s", err, lerr, tail(logs, 30))
	}
	var r distRun
	r.took = time.Since(begin)
	var kept []string
	for _, line := range strings.Split(logs, "\n") {
		if !strings.HasPrefix(line, "{") {
			continue
		}
		kept = append(kept, line)
		var probe struct{ Type string }
		json.Unmarshal([]byte(line), &probe)
		switch probe.Type {
		case "window":
			var w dist.Window
			if err := json.Unmarshal([]byte(line), &w); err != nil {
				t.Fatalf("%v in %q", err, line)
			}
			r.windows = append(r.windows, w)
		case "summary":
			if err := json.Unmarshal([]byte(line), &r.sum); err != nil {
				t.Fatalf("%v in %q", err, line)
			}
		}
	}
	os.MkdirAll(out, 0o755)
	os.WriteFile(filepath.Join(out, "coordinator.jsonl"), []byte(strings.Join(kept, "\n")+"\n"), 0o644)
	if r.sum.Stats == nil || len(r.windows) == 0 {
		t.Fatalf("no summary or windows in the coordinator's log:\n%s", tail(logs, 30))
	}
	return r
}

// line checks the run and returns its e2e summary line.
func (r distRun) line(t *testing.T, wantLost bool) string {
	s := r.sum
	var nodes []string
	var lost []dist.WorkerResult
	var merged int64
	for _, w := range s.WorkerResults {
		nodes = append(nodes, w.Node)
		merged += w.Sent
		if w.Lost {
			lost = append(lost, w)
		}
	}
	slices.Sort(nodes)
	if len(nodes) != 2 || nodes[0] == nodes[1] {
		t.Errorf("workers %v: want 2 on different nodes", nodes)
	}
	if s.StartSkew >= 100*time.Millisecond {
		t.Errorf("start skew %v, want under 100ms", s.StartSkew)
	}
	var windows int64
	for _, w := range r.windows {
		windows += w.Sent
	}
	// Nothing counted twice: the summary is its windows and its workers'.
	if windows != s.Sent || merged != s.Sent {
		t.Errorf("summary sent %d, windows %d, workers' merged %d", s.Sent, windows, merged)
	}
	if s.Failed != 0 {
		t.Errorf("%d calls failed: %v", s.Failed, s.ByCode)
	}
	// On time: the duration, the ready phase and start, one call timeout
	// and a grace, with room for pulling nothing and scheduling.
	if limit := distDuration + 2*time.Minute; r.took > limit {
		t.Errorf("the run took %v, more than %v", r.took, limit)
	}
	lostText := "none lost"
	if wantLost {
		if len(lost) != 1 || !s.Degraded || s.Missing == 0 || lost[0].Missing == 0 {
			t.Errorf("want one worker lost, the run degraded with its share missing: lost %+v, degraded %v, missing %d", lost, s.Degraded, s.Missing)
		} else {
			lostText = fmt.Sprintf("%s lost %v after t0 (%s), %d calls of its share missing, degraded", lost[0].Name, lost[0].LostAt, lost[0].LostReason, lost[0].Missing)
		}
	} else {
		if len(lost) != 0 || s.Degraded {
			t.Errorf("a worker lost in a quiet run: %+v", lost)
		}
		if r := s.Rate / distRate; r < 0.99 || r > 1.01 {
			t.Errorf("achieved %.1f/s of %d asked", s.Rate, distRate)
		}
	}
	return fmt.Sprintf("distributed load: %d workers on %s, start skew %v, asked %d/s achieved %.1f/s (%d generator-bound windows), merged p50 %v p99 %v; %s",
		len(s.WorkerResults), strings.Join(nodes, ","), s.StartSkew, distRate, s.Rate, s.GeneratorBound, s.Latency.P50, s.Latency.P99, lostText)
}
