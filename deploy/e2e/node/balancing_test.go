package node

import (
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/knowingnode/knowingnode/internal/load/engine"
)

// The balancing scenario: three backend pods alike but for their CPU limit
// (balancing-2 may use a quarter of what the others may), so the CPU
// utilization each reports with ORCA (its cgroup's usage against its
// quota) differs for the same calls. bin/load on the node loads them
// through their headless Service under round_robin, then
// weighted_round_robin: the first spreads evenly, the second gives the
// small pod less.
const (
	balancingRate    = 600 // GetIdentity/s: enough CPU to read, far below the limits
	balancingWarmup  = 10 * time.Second
	balancingMeasure = 20 * time.Second
	balancingSvc     = "balancing"
)

// balancingLimits are the pods' CPU limits.
var balancingLimits = []string{"400m", "400m", "100m"}

func balancing(t *testing.T) {
	out := envOr("KNE2E_RESULTS", filepath.Join(repo, "bin", "e2e-node", time.Now().UTC().Format("20060102T150405Z")))
	scenario(t, "balancing", func(t *testing.T) string { return balancingPolicies(t, filepath.Join(out, "balancing")) })
}

func balancingPolicies(t *testing.T, out string) string {
	if err := os.MkdirAll(out, 0o755); err != nil {
		t.Fatal(err)
	}
	manifest := filepath.Join(out, "pods.yaml")
	if err := os.WriteFile(manifest, []byte(balancingManifest()), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := kubectl("apply", "-f", manifest); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { kubectl("delete", "-f", manifest, "--wait=false") })
	if _, err := kubectl("-n", namespace, "wait", "--for=condition=Ready", "pod", "-l", "component=balancing", "--timeout=180s"); err != nil {
		t.Fatal(err)
	}
	target := fmt.Sprintf("dns://10.244.0.1:53/%s.%s.svc.cluster.local:9090", balancingSvc, namespace)
	runs := map[string]*engine.Stats{}
	var lines []string
	for _, policy := range []string{"round_robin", "weighted_round_robin"} {
		h := startHostLoad(t, out, policy, "--target", target, "--policy", policy, "--wrr-blackout", "2s",
			"--rate", fmt.Sprint(balancingRate), "--concurrency", "32", "--warmup", balancingWarmup.String(),
			"--duration", balancingMeasure.String(), "--plot", filepath.Join(out, policy+".png"))
		sum := h.wait(t).sum
		if sum.Failed > 0 || sum.OK == 0 {
			t.Fatalf("%s: %d ok, %d failed %v", policy, sum.OK, sum.Failed, sum.ByCode)
		}
		runs[policy] = sum
		lines = append(lines, policy+" "+balancingShares(sum))
	}
	rr, wrr := runs["round_robin"], runs["weighted_round_robin"]
	small := "balancing-2"
	for _, p := range []string{"balancing-0", "balancing-1", small} {
		if s := share(rr, p); s < 0.2 || s > 0.47 {
			t.Errorf("round_robin: %s took %.2f, want about a third", p, s)
		}
		if rr.LoadByPod[p] == nil {
			t.Errorf("round_robin: no load report from %s", p)
		}
	}
	// Its quota is a quarter: the same calls read as 4x the utilization.
	if l, big := rr.LoadByPod[small], rr.LoadByPod["balancing-0"]; l != nil && big != nil && l.CPUUtilization <= big.CPUUtilization {
		t.Errorf("round_robin: the 100m pod reported cpu %.3f, the 400m one %.3f; want more", l.CPUUtilization, big.CPUUtilization)
	}
	if s := share(wrr, small); s > 0.8*share(rr, small) || s > share(wrr, "balancing-0") || s > share(wrr, "balancing-1") {
		t.Errorf("weighted_round_robin: the 100m pod took %.2f (round_robin %.2f); want clearly less, and less than each peer", s, share(rr, small))
	}
	return "balancing " + strings.Join(lines, "; ") + "; " + out
}

func share(s *engine.Stats, pod string) float64 { return float64(s.ByPod[pod]) / float64(max(s.OK, 1)) }

// balancingShares: "p99 4ms: balancing-0 33% cpu 0.05 w 0.45, ...".
func balancingShares(s *engine.Stats) string {
	var parts []string
	for _, p := range slices.Sorted(maps.Keys(s.ByPod)) {
		part := fmt.Sprintf("%s %.0f%%", p, 100*share(s, p))
		if l := s.LoadByPod[p]; l != nil {
			part += fmt.Sprintf(" cpu %.3f weight share %.2f", l.CPUUtilization, l.WeightShare)
		}
		parts = append(parts, part)
	}
	return fmt.Sprintf("p99 %v: %s", s.Latency.P99, strings.Join(parts, ", "))
}

// balancingManifest is the headless Service and its three pods, one per
// CPU limit, the image and settings of the StatefulSet's backends.
func balancingManifest() string {
	var b strings.Builder
	fmt.Fprintf(&b, `apiVersion: v1
kind: Service
metadata: {name: %s, namespace: %s}
spec:
  clusterIP: None
  selector: {component: balancing}
  ports: [{name: grpc, port: 9090, targetPort: 9090}]
`, balancingSvc, namespace)
	for i, limit := range balancingLimits {
		fmt.Fprintf(&b, `---
apiVersion: v1
kind: Pod
metadata:
  name: balancing-%d
  namespace: %s
  labels: {component: balancing, app.kubernetes.io/name: knowingnode}
spec:
  automountServiceAccountToken: false
  enableServiceLinks: false
  terminationGracePeriodSeconds: 5
  securityContext: {runAsNonRoot: true, runAsUser: 65532, runAsGroup: 65532, seccompProfile: {type: RuntimeDefault}}
  containers:
    - name: backend
      image: %s
      imagePullPolicy: IfNotPresent
      # The namespace enforces PodSecurity "restricted", as the overlays do.
      securityContext: {allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: {drop: [ALL]}}
      command: ["/usr/local/bin/backend"]
      ports: [{name: grpc, containerPort: 9090}]
      env:
        - {name: GRPC_ADDR, value: ":9090"}
        - {name: ADMIN_ADDR, value: ""}
        - {name: DRAIN_DELAY, value: "1s"}
        - {name: DOWNWARD_DIR, value: ""}
        - {name: POD_NAME, valueFrom: {fieldRef: {fieldPath: metadata.name}}}
        - {name: NODE_NAME, valueFrom: {fieldRef: {fieldPath: spec.nodeName}}}
        - {name: POD_IP, valueFrom: {fieldRef: {fieldPath: status.podIP}}}
      resources:
        requests: {cpu: 50m, memory: 32Mi}
        limits: {cpu: %s, memory: 128Mi}
      readinessProbe:
        grpc: {port: 9090}
        periodSeconds: 1
`, i, namespace, imageTag, limit)
	}
	return b.String()
}
