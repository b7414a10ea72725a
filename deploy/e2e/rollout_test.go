package e2e

import (
	"github.com/knowingnode/knowingnode/harness/poll"

	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestRolloutRestart restarts every workload of the all overlay the way an
// operator would, and checks the rollout completes under the manifests'
// strategies (maxUnavailable 0 with a surge for Deployments, topology spread
// with DoNotSchedule, one node at a time for the hostPort DaemonSet), ending
// with only new pods behind the Services.
func TestRolloutRestart(t *testing.T) {
	line := report(t, "rollout restart")
	set, _, _, _ := applyAndRollout(t, "all")
	var lines []string
	for _, w := range workloads(set) {
		t0 := time.Now()
		ctx := t.Context()
		if _, _, err := cl.Kubectl(ctx, "rollout", "restart", "-n", w.ns, w.kind+"/"+w.name); err != nil {
			t.Fatal(err)
		}
		if _, _, err := cl.Kubectl(ctx, "rollout", "status", "-n", w.ns, w.kind+"/"+w.name, "--timeout=120s"); err != nil {
			t.Fatalf("rollout: %v", err)
		}
		poll.T(t, 60*time.Second, "the rolled-out pods", func(ctx context.Context) error {
			pods, err := cl.Client.CoreV1().Pods(w.ns).List(ctx, metav1.ListOptions{LabelSelector: w.selector})
			if err != nil {
				return err
			}
			for _, p := range pods.Items {
				if _, ok := p.Annotations["kubectl.kubernetes.io/restartedAt"]; !ok {
					return fmt.Errorf("%s/%s pod %s is from before the restart", w.kind, w.name, p.Name)
				}
			}
			if len(pods.Items) == 0 {
				return fmt.Errorf("%s/%s has no pods", w.kind, w.name)
			}
			return nil
		})
		lines = append(lines, fmt.Sprintf("%s/%s %s", w.kind, w.name, time.Since(t0).Round(10*time.Millisecond)))
	}
	*line = strings.Join(lines, ", ")
}
