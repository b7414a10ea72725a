package helm

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	psapi "k8s.io/pod-security-admission/api"
	"k8s.io/pod-security-admission/policy"
)

const chartDir = "knowingnode"

// overlays pairs each values file with the kustomization it must equal.
var overlays = []struct{ values, kustomization string }{
	{"testdata/deployment.yaml", "../overlays/deployment"},
	{"testdata/statefulset.yaml", "../overlays/statefulset"},
	{"testdata/daemonset.yaml", "../overlays/daemonset"},
	{"testdata/nodeport.yaml", "../overlays/nodeport"},
	{"testdata/all.yaml", "../overlays/all"},
	{"testdata/all-monitoring.yaml", "testdata/all-monitoring"},
	{"testdata/endpointslices.yaml", "testdata/endpointslices"},
	{"testdata/prefer-close.yaml", "testdata/prefer-close"},
	{"testdata/loadtest.yaml", "testdata/loadtest"},
	{"testdata/distributed.yaml", "testdata/distributed"},
	{"testdata/distributed-tuned.yaml", "testdata/distributed-tuned"},
}

// TestChartMatchesKustomize is the one source of truth: for every topology
// the chart renders exactly the overlay's objects with exactly its fields, so
// a change to either side alone fails here.
func TestChartMatchesKustomize(t *testing.T) {
	t.Parallel()
	for _, o := range overlays {
		t.Run(filepath.Base(o.values), func(t *testing.T) {
			t.Parallel()
			chart, err := decode(renderChart(t, chartDir, o.values))
			if err != nil {
				t.Fatalf("chart: %v", err)
			}
			kust, err := decode(renderKustomize(t, o.kustomization))
			if err != nil {
				t.Fatalf("kustomize: %v", err)
			}
			if len(kust) < 5 {
				t.Fatalf("kustomize %s rendered %d objects: %v", o.kustomization, len(kust), ids(kust))
			}
			if d := compare(chart, kust); len(d) > 0 {
				t.Errorf("chart with %s and kustomize %s differ:\n%s", o.values, o.kustomization, summarize(d))
			}
		})
	}
}

// TestCompareCatches proves the comparison can fail: a copy of the chart or
// of the overlays with one field changed must be reported, naming the object.
func TestCompareCatches(t *testing.T) {
	t.Parallel()
	kustDeploy := renderKustomize(t, "../overlays/deployment")
	chartDeploy := renderChart(t, chartDir, "testdata/deployment.yaml")
	cases := []struct {
		name      string
		chartEdit func(dir string) // edits a copy of the chart
		kustEdit  func(dir string) // edits a copy of deploy/
		wantID    string
	}{
		{
			name: "chart backend readiness probe",
			chartEdit: func(dir string) {
				replaceIn(t, filepath.Join(dir, "templates/_helpers.tpl"), "failureThreshold: 1\n", "failureThreshold: 2\n")
			},
			wantID: "Deployment knowingnode/backend",
		},
		{
			name: "chart frontend Service port",
			chartEdit: func(dir string) {
				replaceIn(t, filepath.Join(dir, "templates/_frontend.tpl"), "port: 8080\n", "port: 8081\n")
			},
			wantID: "Service knowingnode/frontend-deployment",
		},
		{
			name: "kustomize backend resources",
			kustEdit: func(dir string) {
				replaceIn(t, filepath.Join(dir, "components/deployment/backend.yaml"), "memory: 128Mi", "memory: 256Mi")
			},
			wantID: "Deployment knowingnode/backend",
		},
		{
			name: "kustomize frontend security context",
			kustEdit: func(dir string) {
				replaceIn(t, filepath.Join(dir, "frontend/frontend.yaml"), "readOnlyRootFilesystem: true", "readOnlyRootFilesystem: false")
			},
			wantID: "Deployment knowingnode/frontend-deployment",
		},
		{
			name: "kustomize extra object",
			kustEdit: func(dir string) {
				replaceIn(t, filepath.Join(dir, "overlays/deployment/kustomization.yaml"), "../../components/deployment", "../../components/deployment\n  - ../../components/monitoring")
			},
			wantID: "PodMonitor knowingnode/knowingnode-backend",
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			chartYAML, kustYAML := chartDeploy, kustDeploy
			if c.chartEdit != nil {
				dir := filepath.Join(t.TempDir(), "knowingnode")
				copyDir(t, chartDir, dir)
				c.chartEdit(dir)
				chartYAML = renderChart(t, dir, "testdata/deployment.yaml")
			}
			if c.kustEdit != nil {
				dir := t.TempDir()
				for _, d := range []string{"base", "components", "frontend", "overlays"} {
					copyDir(t, filepath.Join("..", d), filepath.Join(dir, d))
				}
				c.kustEdit(dir)
				kustYAML = renderKustomize(t, filepath.Join(dir, "overlays/deployment"))
			}
			chart, err := decode(chartYAML)
			if err != nil {
				t.Fatal(err)
			}
			kust, err := decode(kustYAML)
			if err != nil {
				t.Fatal(err)
			}
			d := compare(chart, kust)
			if len(d) == 0 || !strings.HasPrefix(d[0], c.wantID) {
				t.Errorf("after the edit, compare reported %d differences, want the first about %s:\n%s", len(d), c.wantID, summarize(d))
			}
		})
	}
}

func copyDir(t *testing.T, src, dst string) {
	t.Helper()
	if err := os.CopyFS(dst, os.DirFS(src)); err != nil {
		t.Fatal(err)
	}
}

// replaceIn replaces the first occurrence of old in file, failing when there
// is none (the mutation would prove nothing).
func replaceIn(t *testing.T, file, old, new string) {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), old) {
		t.Fatalf("%s has no %q to change", file, old)
	}
	if err := os.WriteFile(file, []byte(strings.Replace(string(b), old, new, 1)), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestChartPodSecurity checks every pod the chart renders (the templates of
// every Deployment, StatefulSet, DaemonSet and Job, and the helm test pod)
// against the Pod Security levels of the namespace it lands in, as the API
// server would: the restricted namespace's ENFORCE level must admit every
// pod, and every WARN level must be met too, except the DaemonSet's hostPort,
// the one reason it has a namespace of its own. Each pod must also be
// hardened beyond that (hardened).
func TestChartPodSecurity(t *testing.T) {
	t.Parallel()
	eval, err := policy.NewEvaluator(policy.DefaultChecks(), nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range overlays {
		t.Run(filepath.Base(o.values), func(t *testing.T) {
			t.Parallel()
			out, err := helm(t, "template", "knowingnode", chartDir, "-f", o.values)
			if err != nil {
				t.Fatal(err)
			}
			objs, err := decode(out)
			if err != nil {
				t.Fatal(err)
			}
			namespaces := map[string]*corev1.Namespace{}
			type pod struct {
				id   string
				meta *metav1.ObjectMeta
				spec *corev1.PodSpec
			}
			var pods []pod
			for _, id := range ids(objs) {
				switch x := objs[id].typ.(type) {
				case *corev1.Namespace:
					namespaces[x.Name] = x
				case *corev1.Pod:
					pods = append(pods, pod{id, &x.ObjectMeta, &x.Spec})
				case *appsv1.Deployment:
					pods = append(pods, pod{id, &x.Spec.Template.ObjectMeta, &x.Spec.Template.Spec})
				case *appsv1.StatefulSet:
					pods = append(pods, pod{id, &x.Spec.Template.ObjectMeta, &x.Spec.Template.Spec})
				case *appsv1.DaemonSet:
					pods = append(pods, pod{id, &x.Spec.Template.ObjectMeta, &x.Spec.Template.Spec})
				case *batchv1.Job:
					pods = append(pods, pod{id, &x.Spec.Template.ObjectMeta, &x.Spec.Template.Spec})
				}
			}
			if !slices.ContainsFunc(pods, func(p pod) bool { return strings.HasPrefix(p.id, "Pod ") }) {
				t.Errorf("no helm test pod rendered")
			}
			if ns := namespaces["knowingnode"]; ns == nil || ns.Labels["pod-security.kubernetes.io/enforce"] != "restricted" {
				t.Fatalf("namespace knowingnode missing or not enforcing restricted: %v", ns)
			}
			for _, p := range pods {
				hardened(t, p.id, p.spec)
				nsName := strings.SplitN(strings.SplitN(p.id, " ", 2)[1], "/", 2)[0]
				ns := namespaces[nsName]
				if ns == nil {
					t.Errorf("%s: its namespace %s is not rendered by the chart", p.id, nsName)
					continue
				}
				for _, mode := range []string{"enforce", "warn"} {
					lvl, err := psapi.ParseLevel(ns.Labels["pod-security.kubernetes.io/"+mode])
					if err != nil {
						t.Errorf("namespace %s: %s level: %v", nsName, mode, err)
						continue
					}
					for _, r := range eval.EvaluatePod(psapi.LevelVersion{Level: lvl, Version: psapi.LatestVersion()}, p.meta, p.spec) {
						if r.Allowed || (mode == "warn" && strings.HasPrefix(p.id, "DaemonSet ") && r.ForbiddenReason == "hostPort") {
							continue
						}
						t.Errorf("%s violates Pod Security %s (%s of namespace %s): %s: %s", p.id, lvl, mode, nsName, r.ForbiddenReason, r.ForbiddenDetail)
					}
				}
			}
		})
	}
}

// tokenPods are the only pods that mount a ServiceAccount token.
var tokenPods = []string{"Deployment knowingnode/frontend-endpointslices"}

// hardened checks what Pod Security restricted does not: every container
// has a read-only root filesystem and drops ALL capabilities, and no pod
// but tokenPods mounts a ServiceAccount token.
func hardened(t *testing.T, id string, spec *corev1.PodSpec) {
	t.Helper()
	for _, c := range slices.Concat(spec.InitContainers, spec.Containers) {
		sc := c.SecurityContext
		if sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
			t.Errorf("%s: container %s: root filesystem not read-only", id, c.Name)
		}
		if sc == nil || sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") {
			t.Errorf("%s: container %s: does not drop ALL capabilities", id, c.Name)
		}
	}
	mounts := spec.AutomountServiceAccountToken == nil || *spec.AutomountServiceAccountToken
	if mounts != slices.Contains(tokenPods, id) {
		t.Errorf("%s: mounts a ServiceAccount token: %v, want %v", id, mounts, !mounts)
	}
}

// TestLint runs `helm lint --strict` with every values file.
func TestLint(t *testing.T) {
	t.Parallel()
	for _, o := range overlays {
		if out, err := helm(t, "lint", "--strict", chartDir, "-f", o.values); err != nil {
			t.Errorf("%v\n%s", err, out)
		}
	}
}
