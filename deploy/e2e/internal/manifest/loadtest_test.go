package manifest

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/labels"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	psapi "k8s.io/pod-security-admission/api"
	"k8s.io/pod-security-admission/policy"
)

// renderWith renders overlay with the given components added, as a user's
// overlay would, and returns the load pod templates (Job or Deployment
// "load") apart from the rest, which is decoded into a Set.
func renderWith(t *testing.T, overlay string, components ...string) (map[string]*corev1.PodTemplateSpec, *Set) {
	t.Helper()
	abs, err := filepath.Abs(deployDir)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	rel, err := filepath.Rel(dir, abs) // kustomize takes no absolute roots
	if err != nil {
		t.Fatal(err)
	}
	kust := "resources:\n  - " + filepath.Join(rel, "overlays", overlay) + "\ncomponents:\n"
	for _, c := range components {
		kust += "  - " + filepath.Join(rel, "components", c) + "\n"
	}
	if err := os.WriteFile(filepath.Join(dir, "kustomization.yaml"), []byte(kust), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := Render(dir)
	if err != nil {
		t.Fatal(err)
	}
	loads := map[string]*corev1.PodTemplateSpec{}
	var rest bytes.Buffer
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(out)))
	for i := 0; ; i++ {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		obj, _, err := strict.Decode(doc, nil, nil)
		if err != nil {
			t.Fatalf("%s: %v", identify(doc, i), err)
		}
		switch o := obj.(type) {
		case *batchv1.Job:
			loads[objectID("Job", o.Namespace, o.Name)] = &o.Spec.Template
			continue
		case *appsv1.Deployment:
			if o.Name == "load" {
				if ok, err := selectorMatches(o.Spec.Selector, o.Spec.Template.Labels); err != nil || !ok {
					t.Errorf("Deployment %s: selector does not select its template (%v)", o.Name, err)
				}
				loads[objectID("Deployment", o.Namespace, o.Name)] = &o.Spec.Template
				continue
			}
		case *rbacv1.Role:
			// The load's only grant, for --hpa: get and watch HPAs.
			for _, rule := range o.Rules {
				if !slices.Equal(rule.Verbs, []string{"get", "watch"}) || !slices.Equal(rule.Resources, []string{"horizontalpodautoscalers"}) {
					t.Errorf("Role %s grants %v on %v; the load may only get and watch horizontalpodautoscalers", o.Name, rule.Verbs, rule.Resources)
				}
			}
			continue
		case *rbacv1.RoleBinding, *corev1.ServiceAccount:
			continue
		}
		rest.WriteString("---\n")
		rest.Write(doc)
	}
	set, err := Decode(rest.Bytes())
	if err != nil {
		t.Fatalf("decode: %v", err)
	}
	return loads, set
}

var envRef = regexp.MustCompile(`\$\(([A-Z0-9_]+)\)`)

// The loadtest component and its continuous variant, added to an overlay:
// restricted Pod Security, hardened like every other pod, every $(VAR) of
// its arguments defined, a default target that is a Service (and port) of
// the overlay, and pods no Service, budget or workload of the overlay
// selects (they must not take traffic or be adopted). The overlay itself
// still passes every check.
func TestLoadtestComponent(t *testing.T) {
	for _, tc := range []struct{ component, kind string }{
		{"loadtest", "Job"},
		{"loadtest/continuous", "Deployment"},
	} {
		t.Run(tc.component, func(t *testing.T) {
			loads, set := renderWith(t, "all", tc.component)
			if err := Check(set, exempt); err != nil {
				t.Fatalf("the overlay with the component fails the static checks:\n%v", err)
			}
			id := objectID(tc.kind, "knowingnode", "load")
			tpl, ok := loads[id]
			if !ok || len(loads) != 1 {
				t.Fatalf("load objects %v, want exactly %s", slices.Collect(mapKeys(loads)), id)
			}
			checkLoadPod(t, id, tpl, set)
		})
	}
}

func mapKeys[V any](m map[string]V) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

func checkLoadPod(t *testing.T, id string, tpl *corev1.PodTemplateSpec, set *Set) {
	t.Helper()
	spec := &tpl.Spec
	if spec.AutomountServiceAccountToken == nil || *spec.AutomountServiceAccountToken {
		t.Errorf("%s: automountServiceAccountToken must be false", id)
	}
	if psc := spec.SecurityContext; psc == nil || psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("%s: pod seccompProfile must be RuntimeDefault", id)
	}
	eval, err := policy.NewEvaluator(policy.DefaultChecks(), nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range eval.EvaluatePod(psapi.LevelVersion{Level: psapi.LevelRestricted, Version: psapi.LatestVersion()}, &tpl.ObjectMeta, spec) {
		if !r.Allowed {
			t.Errorf("%s: violates Pod Security restricted: %s (%s)", id, r.ForbiddenReason, r.ForbiddenDetail)
		}
	}
	if len(spec.Containers) != 1 {
		t.Fatalf("%s: %d containers, want 1", id, len(spec.Containers))
	}
	ct := spec.Containers[0]
	podNonRoot := spec.SecurityContext != nil && spec.SecurityContext.RunAsNonRoot != nil && *spec.SecurityContext.RunAsNonRoot
	if sc := ct.SecurityContext; sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem ||
		sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
		sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") ||
		(!podNonRoot && (sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot)) {
		t.Errorf("%s: container must be non-root, read-only root fs, no privilege escalation, drop ALL", id)
	}
	for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
		if _, ok := ct.Resources.Requests[r]; !ok {
			t.Errorf("%s: resources.requests.%s is missing", id, r)
		}
		if _, ok := ct.Resources.Limits[r]; !ok {
			t.Errorf("%s: resources.limits.%s is missing", id, r)
		}
	}
	if !slices.Equal(ct.Command, []string{"/usr/local/bin/load"}) {
		t.Errorf("%s: command %q, want [/usr/local/bin/load]", id, ct.Command)
	}
	env := map[string]string{}
	for _, e := range ct.Env {
		env[e.Name] = e.Value
	}
	flags := map[string]string{}
	for _, a := range ct.Args {
		for _, m := range envRef.FindAllStringSubmatch(a, -1) {
			if _, ok := env[m[1]]; !ok {
				t.Errorf("%s: argument %q refers to $(%s), which the container does not define", id, a, m[1])
			}
		}
		name, value, _ := strings.Cut(strings.TrimPrefix(a, "--"), "=")
		flags[name] = envRef.ReplaceAllStringFunc(value, func(s string) string { return env[envRef.FindStringSubmatch(s)[1]] })
	}
	for _, f := range []string{"target", "call", "rate", "duration"} {
		if _, ok := flags[f]; !ok {
			t.Errorf("%s: no --%s argument (rate, duration, call and target are the knobs)", id, f)
		}
	}
	if flags["json"] != "-" {
		t.Errorf("%s: --json is %q, want - (the results as JSON lines in the log)", id, flags["json"])
	}
	// The default target: a Service of the overlay, on a port it serves.
	target := strings.TrimPrefix(flags["target"], "dns:///")
	host, port, err := net.SplitHostPort(target)
	if err != nil {
		t.Fatalf("%s: --target %q: %v", id, flags["target"], err)
	}
	svcName, rest, _ := strings.Cut(host, ".")
	ns, _, _ := strings.Cut(rest, ".")
	found := false
	for _, s := range set.Services {
		if s.Name == svcName && s.Namespace == ns {
			for _, p := range s.Spec.Ports {
				found = found || itoa(p.Port) == port
			}
		}
	}
	if !found {
		t.Errorf("%s: --target %q is not a Service port of the overlay", id, flags["target"])
	}
	// Nothing of the overlay may select the load pods.
	l := labels.Set(tpl.Labels)
	for _, s := range set.Services {
		if len(s.Spec.Selector) > 0 && labels.SelectorFromSet(s.Spec.Selector).Matches(l) {
			t.Errorf("%s: its pods are selected by Service %s/%s", id, s.Namespace, s.Name)
		}
	}
	for _, b := range set.PDBs {
		if ok, _ := selectorMatches(b.Spec.Selector, l); ok {
			t.Errorf("%s: its pods are selected by PodDisruptionBudget %s", id, b.Name)
		}
	}
	for _, w := range set.workloads() {
		if ok, _ := selectorMatches(w.selector, l); ok {
			t.Errorf("%s: its pods are selected by %s", id, w.id())
		}
	}
}
