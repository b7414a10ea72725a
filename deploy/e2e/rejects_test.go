package e2e

import (
	"github.com/knowingnode/knowingnode/harness/poll"

	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"
)

// brokenBackend returns a copy of the Deployment overlay's backend under
// another name and label, so that it touches nothing the other tests use.
func brokenBackend(t *testing.T) *appsv1.Deployment {
	t.Helper()
	set := load(t, "deployment")
	for _, d := range set.Deployments {
		if d.Name == "backend" {
			b := d.DeepCopy()
			b.TypeMeta = metav1.TypeMeta{APIVersion: "apps/v1", Kind: "Deployment"}
			b.Name = "backend-broken"
			for _, l := range []map[string]string{b.Labels, b.Spec.Selector.MatchLabels, b.Spec.Template.Labels} {
				l["controlling"] = "broken"
			}
			b.Spec.Template.Spec.TopologySpreadConstraints = nil
			return b
		}
	}
	t.Fatal("the deployment overlay has no backend Deployment")
	return nil
}

// applyObject server-side applies obj (after edit, on its generic form) the
// way `kubectl apply --server-side -f` does, and returns kubectl's stderr.
func applyObject(t *testing.T, obj any, edit func(map[string]any)) (string, error) {
	t.Helper()
	b, err := yaml.Marshal(obj)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := yaml.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	delete(m, "status")
	if edit != nil {
		edit(m)
	}
	if b, err = yaml.Marshal(m); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "broken.yaml")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	_, stderr, err := cl.Kubectl(t.Context(), "apply", "--server-side", "--field-manager=knowingnode-e2e", "-f", path)
	return stderr, err
}

// TestBrokenManifestsRejected: the real API server, with the restricted
// standard enforced, refuses broken copies of the manifests with a message
// that names the object and the field.
func TestBrokenManifestsRejected(t *testing.T) {
	line := report(t, "bad input")
	if _, _, _, _ = applyAndRollout(t, "deployment"); t.Failed() {
		return
	}
	cases := []struct {
		name string
		edit func(d *appsv1.Deployment)
		raw  func(m map[string]any)
		want []string
	}{
		{
			name: "unknown field",
			raw:  func(m map[string]any) { m["spec"].(map[string]any)["replicaz"] = 4 },
			want: []string{`backend-broken`, `.spec.replicaz: field not declared in schema`},
		},
		{
			name: "selector mismatch",
			edit: func(d *appsv1.Deployment) { d.Spec.Selector.MatchLabels["component"] = "backendd" },
			want: []string{`The Deployment "backend-broken" is invalid`, `spec.template.metadata.labels`, "`selector` does not match template `labels`"},
		},
	}
	var lines []string
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d := brokenBackend(t)
			if c.edit != nil {
				c.edit(d)
			}
			_, err := applyObject(t, d, c.raw)
			if err == nil {
				t.Fatal("the API server accepted the broken Deployment")
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not mention %q:\n%v", w, err)
				}
			}
			if !t.Failed() {
				lines = append(lines, c.name+" refused")
			}
		})
	}

	// A pod template that violates restricted: the Deployment itself is
	// admitted with a warning (Pod Security enforces on pods), and every pod
	// its ReplicaSet tries to create is refused, naming pod and field.
	t.Run("restricted violation", func(t *testing.T) {
		d := brokenBackend(t)
		yes := true
		d.Spec.Template.Spec.Containers[0].SecurityContext.AllowPrivilegeEscalation = &yes
		t.Cleanup(func() {
			_, _, _ = cl.Kubectl(context.Background(), "delete", "-n", "knowingnode", "deployment/backend-broken", "--wait=false")
		})
		const field = `allowPrivilegeEscalation != false (container "backend" must set securityContext.allowPrivilegeEscalation=false)`
		stderr, err := applyObject(t, d, nil)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(stderr, `would violate PodSecurity "restricted:latest": `+field) {
			t.Errorf("apply did not warn about the violation; stderr: %q", stderr)
		}
		poll.T(t, 30*time.Second, "the ReplicaSet to report the rejected pods", func(ctx context.Context) error {
			rss, err := cl.Client.AppsV1().ReplicaSets("knowingnode").List(ctx, metav1.ListOptions{LabelSelector: "controlling=broken"})
			if err != nil {
				return err
			}
			for _, rs := range rss.Items {
				for _, cond := range rs.Status.Conditions {
					if cond.Type == appsv1.ReplicaSetReplicaFailure &&
						strings.Contains(cond.Message, `pods "backend-broken-`) &&
						strings.Contains(cond.Message, `is forbidden: violates PodSecurity "restricted:latest": `+field) {
						if rs.Status.Replicas != 0 {
							return fmt.Errorf("ReplicaSet %s has %d pods despite the refusal", rs.Name, rs.Status.Replicas)
						}
						return nil
					}
				}
			}
			return fmt.Errorf("no ReplicaSet of backend-broken reports the Pod Security refusal yet")
		})
		lines = append(lines, "restricted violation: pods refused")
	})
	*line = strings.Join(lines, ", ") + ", each naming object and field"
}
