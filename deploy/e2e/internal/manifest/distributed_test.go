package manifest

import (
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	psapi "k8s.io/pod-security-admission/api"
	"k8s.io/pod-security-admission/policy"
)

// The distributed loadtest component (internal/load/dist), added to an
// overlay: two Jobs under restricted Pod Security with no API token, every
// $(VAR) defined; the workers spread over the nodes and load a Service of
// the overlay; the coordinator finds them through the headless Service,
// which selects the workers and nothing of the overlay; the overlay still
// passes its checks.
func TestDistributedLoadtestComponent(t *testing.T) {
	loads, set := renderWith(t, "all", "loadtest/distributed")
	var workersSvc *corev1.Service
	for i, s := range set.Services {
		if s.Name == "load-workers" {
			workersSvc = set.Services[i]
		}
	}
	if workersSvc == nil || workersSvc.Spec.ClusterIP != corev1.ClusterIPNone {
		t.Fatalf("no headless Service load-workers: %+v", workersSvc)
	}
	set.Services = slices.DeleteFunc(set.Services, func(s *corev1.Service) bool { return s.Name == "load-workers" })
	if err := Check(set, exempt); err != nil {
		t.Fatalf("the overlay with the component fails the static checks:\n%v", err)
	}
	workers, coord := loads[objectID("Job", "knowingnode", "load-workers")], loads[objectID("Job", "knowingnode", "load-coordinator")]
	if workers == nil || coord == nil || len(loads) != 2 {
		t.Fatalf("load objects %v, want the Jobs load-workers and load-coordinator", slices.Collect(mapKeys(loads)))
	}
	eval, err := policy.NewEvaluator(policy.DefaultChecks(), nil)
	if err != nil {
		t.Fatal(err)
	}
	for id, tpl := range loads {
		spec := &tpl.Spec
		for _, r := range eval.EvaluatePod(psapi.LevelVersion{Level: psapi.LevelRestricted, Version: psapi.LatestVersion()}, &tpl.ObjectMeta, spec) {
			if !r.Allowed {
				t.Errorf("%s: violates Pod Security restricted: %s (%s)", id, r.ForbiddenReason, r.ForbiddenDetail)
			}
		}
		if spec.AutomountServiceAccountToken == nil || *spec.AutomountServiceAccountToken {
			t.Errorf("%s: automountServiceAccountToken must be false (DNS discovery needs no API)", id)
		}
		ct := spec.Containers[0]
		if sc := ct.SecurityContext; sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem ||
			sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") {
			t.Errorf("%s: container must have a read-only root fs and drop ALL", id)
		}
		env := map[string]bool{}
		for _, e := range ct.Env {
			env[e.Name] = true
		}
		for _, a := range ct.Args {
			for _, m := range envRef.FindAllStringSubmatch(a, -1) {
				if !env[m[1]] {
					t.Errorf("%s: argument %q refers to $(%s), which the container does not define", id, a, m[1])
				}
			}
		}
		if _, ok := ct.Resources.Limits[corev1.ResourceCPU]; !ok {
			t.Errorf("%s: no CPU limit", id)
		}
	}
	// The headless Service selects exactly the workers, on their port.
	sel := labels.SelectorFromSet(workersSvc.Spec.Selector)
	if !sel.Matches(labels.Set(workers.Labels)) || sel.Matches(labels.Set(coord.Labels)) {
		t.Errorf("Service load-workers selects %v: want the workers' pods only", workersSvc.Spec.Selector)
	}
	for _, w := range set.workloads() {
		if sel.Matches(labels.Set(w.template.Labels)) {
			t.Errorf("Service load-workers selects %s", w.id())
		}
	}
	wct := workers.Spec.Containers[0]
	if len(wct.Ports) != 1 || wct.Ports[0].Name != "grpc" || wct.ReadinessProbe == nil || wct.ReadinessProbe.GRPC == nil ||
		wct.ReadinessProbe.GRPC.Port != wct.Ports[0].ContainerPort {
		t.Errorf("workers: want one grpc port with a gRPC readiness probe on it: %+v %+v", wct.Ports, wct.ReadinessProbe)
	}
	if ts := workers.Spec.TopologySpreadConstraints; len(ts) != 1 || ts[0].TopologyKey != "kubernetes.io/hostname" {
		t.Errorf("workers: want a topology spread over the nodes: %+v", ts)
	}
	// The workers' target (after --) is a Service of the overlay; the
	// coordinator's workers are the headless Service.
	i := slices.Index(wct.Args, "--")
	if i < 0 || !slices.Contains(wct.Args[:i], "worker") {
		t.Fatalf("workers: args %q, want worker ... -- <target flags>", wct.Args)
	}
	var coordTarget string
	for _, a := range coord.Spec.Containers[0].Args {
		if v, ok := strings.CutPrefix(a, "--workers-target="); ok {
			coordTarget = v
		}
	}
	if want := "dns:///load-workers.knowingnode.svc.cluster.local:9300"; coordTarget != want {
		t.Errorf("coordinator --workers-target %q, want %q", coordTarget, want)
	}
	var target string
	for _, e := range wct.Env {
		if e.Name == "LOAD_TARGET" {
			target = strings.TrimPrefix(e.Value, "dns:///")
		}
	}
	svcName, _, _ := strings.Cut(target, ".")
	found := false
	for _, s := range set.Services {
		found = found || s.Name == svcName && s.Namespace == "knowingnode"
	}
	if !found {
		t.Errorf("workers' LOAD_TARGET %q is not a Service of the overlay", target)
	}
}
