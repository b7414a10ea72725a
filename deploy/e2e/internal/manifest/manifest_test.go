package manifest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// deployDir is the repository's deploy/ folder, seen from this package.
const deployDir = "../../.."

// Overlays are the kustomizations users apply.
var Overlays = []string{"deployment", "nodeport", "daemonset", "statefulset", "all"}

// exempt is the one accepted deviation: the DaemonSet's hostPort, which Pod
// Security's baseline and restricted levels forbid outright (its namespace
// enforces privileged and only warns at restricted).
var exempt = Options{Exempt: map[string][]string{"DaemonSet knowingnode-node/backend-ds": {"hostPort"}}}

func load(t *testing.T, dir string) *Set {
	t.Helper()
	out, err := Render(dir)
	if err != nil {
		t.Fatalf("render: %v", err)
	}
	set, err := Decode(out)
	if err != nil {
		t.Fatalf("decode: %v", err)
	}
	return set
}

func TestOverlaysPassEveryCheck(t *testing.T) {
	for _, o := range Overlays {
		t.Run(o, func(t *testing.T) {
			set := load(t, filepath.Join(deployDir, "overlays", o))
			if err := Check(set, exempt); err != nil {
				t.Fatalf("static checks:\n%v", err)
			}
		})
	}
}

// TestOverlayShapes pins what each overlay must contain, so that a check
// passing on an overlay that lost half its objects is noticed.
func TestOverlayShapes(t *testing.T) {
	type want struct {
		deployments, statefulsets, daemonsets, services, hpas, pdbs int
		nodePorts                                                   map[string]int32
	}
	cases := map[string]want{
		"deployment":  {2, 0, 0, 2, 2, 2, nil},
		"nodeport":    {2, 0, 0, 2, 2, 2, map[string]int32{"backend/grpc": 30091, "frontend-deployment/http": 30080, "frontend-deployment/grpc": 30090}},
		"daemonset":   {1, 0, 1, 3, 1, 2, nil}, // + frontend-peers-daemonset
		"statefulset": {1, 1, 0, 2, 2, 2, nil},
		"all":         {4, 1, 1, 7, 5, 6, nil},
	}
	for o, w := range cases {
		t.Run(o, func(t *testing.T) {
			s := load(t, filepath.Join(deployDir, "overlays", o))
			got := want{len(s.Deployments), len(s.StatefulSets), len(s.DaemonSets), len(s.Services), len(s.HPAs), len(s.PDBs), nil}
			for _, svc := range s.Services {
				for _, p := range svc.Spec.Ports {
					if p.NodePort != 0 {
						if got.nodePorts == nil {
							got.nodePorts = map[string]int32{}
						}
						got.nodePorts[svc.Name+"/"+p.Name] = p.NodePort
					}
				}
			}
			if got.deployments != w.deployments || got.statefulsets != w.statefulsets || got.daemonsets != w.daemonsets ||
				got.services != w.services || got.hpas != w.hpas || got.pdbs != w.pdbs || len(got.nodePorts) != len(w.nodePorts) {
				t.Fatalf("got %+v, want %+v", got, w)
			}
			for k, v := range w.nodePorts {
				if got.nodePorts[k] != v {
					t.Errorf("nodePort %s = %d, want %d", k, got.nodePorts[k], v)
				}
			}
			for _, d := range s.Deployments {
				if d.Spec.Template.Labels["component"] == "backend" && (d.Spec.Replicas == nil || *d.Spec.Replicas != 3) {
					t.Errorf("backend Deployment %s replicas = %v, want 3", d.Name, d.Spec.Replicas)
				}
			}
			for _, d := range s.StatefulSets {
				if d.Spec.Replicas == nil || *d.Spec.Replicas != 3 {
					t.Errorf("StatefulSet %s replicas = %v, want 3", d.Name, d.Spec.Replicas)
				}
			}
		})
	}
}

// TestBackendTemplatesAgree: the backend pod template is written out once per
// controller kind; apart from the hostPort and the controlling label they
// must not drift apart.
func TestBackendTemplatesAgree(t *testing.T) {
	s := load(t, filepath.Join(deployDir, "overlays", "all"))
	norm := func(ws workload) string {
		tpl := ws.template.DeepCopy()
		delete(tpl.Labels, "controlling")
		tpl.Spec.TopologySpreadConstraints = nil
		for i := range tpl.Spec.Containers {
			for j := range tpl.Spec.Containers[i].Ports {
				tpl.Spec.Containers[i].Ports[j].HostPort = 0
			}
		}
		return tpl.String()
	}
	var first string
	n := 0
	for _, w := range s.workloads() {
		if w.template.Labels["component"] != "backend" {
			continue
		}
		n++
		if first == "" {
			first = norm(w)
		} else if got := norm(w); got != first {
			t.Errorf("%s pod template differs from the other backends':\n%s\nvs\n%s", w.id(), got, first)
		}
	}
	if n != 3 {
		t.Fatalf("found %d backend workloads, want 3", n)
	}
}

func TestParseTargets(t *testing.T) {
	got, err := ParseTargets("a=dns:///backend.knowingnode.svc.cluster.local:9090  b=srv:///_grpc._tcp.b.ns.svc.cluster.local")
	if err != nil || len(got) != 2 || got[0].Name != "a" || got[0].Port != "9090" || got[1].Host != "_grpc._tcp.b.ns.svc.cluster.local" {
		t.Fatalf("got %+v, %v", got, err)
	}
	for _, bad := range []string{"justaspec", "x=ftp:///a:1", "x=dns:///nohostport"} {
		if _, err := ParseTargets(bad); err == nil {
			t.Errorf("ParseTargets(%q) succeeded", bad)
		}
	}
}

// TestBrokenCopiesFail breaks a copy of deploy/ in one way each and checks
// that the failure names the object and the field.
func TestBrokenCopiesFail(t *testing.T) {
	cases := []struct {
		name, overlay, file, old, new string
		want                          []string
	}{
		{
			name: "unknown field", overlay: "deployment", file: "components/deployment/backend.yaml",
			old: "  revisionHistoryLimit: 3\n", new: "  revisionHistoryLimit: 3\n  replicaz: 4\n",
			want: []string{"Deployment knowingnode/backend", `unknown field "spec.replicaz"`},
		},
		{
			name: "HPA scales down without a window", overlay: "deployment", file: "components/deployment/backend.yaml",
			old: "      stabilizationWindowSeconds: 180\n", new: "      stabilizationWindowSeconds: 0\n",
			want: []string{"HorizontalPodAutoscaler knowingnode/backend", "scaleDown.stabilizationWindowSeconds"},
		},
		{
			name: "PDB that blocks every drain at the HPA minimum", overlay: "statefulset", file: "components/statefulset/backend.yaml",
			old: "  maxUnavailable: 1\n", new: "  maxUnavailable: 0\n",
			want: []string{"HorizontalPodAutoscaler knowingnode/backend-sts", "allows no disruption at spec.minReplicas 2"},
		},
		{
			name: "unknown container field", overlay: "statefulset", file: "components/statefulset/backend.yaml",
			old: "          imagePullPolicy: IfNotPresent\n", new: "          imagePullPolicy: IfNotPresent\n          imagePullPolicyy: Always\n",
			want: []string{"StatefulSet knowingnode/backend-sts", `unknown field "spec.template.spec.containers[0].imagePullPolicyy"`},
		},
		{
			name: "selector mismatch", overlay: "statefulset", file: "components/statefulset/backend.yaml",
			old:  "  selector:\n    matchLabels:\n      app.kubernetes.io/name: knowingnode\n      component: backend\n      controlling: statefulset\n",
			new:  "  selector:\n    matchLabels:\n      app.kubernetes.io/name: knowingnode\n      component: backendd\n      controlling: statefulset\n",
			want: []string{"StatefulSet knowingnode/backend-sts", "spec.selector", "does not match spec.template.metadata.labels"},
		},
		{
			name: "restricted violation", overlay: "deployment", file: "components/deployment/backend.yaml",
			old: "            allowPrivilegeEscalation: false\n", new: "            allowPrivilegeEscalation: true\n",
			want: []string{"Deployment knowingnode/backend", `violates Pod Security "restricted"`, "allowPrivilegeEscalation != false", "securityContext.allowPrivilegeEscalation=false"},
		},
		{
			name: "root user", overlay: "all", file: "frontend/frontend.yaml",
			old: "        runAsUser: 65532\n", new: "        runAsUser: 0\n",
			want: []string{"Deployment knowingnode/frontend-", "runAsUser=0"},
		},
		{
			name: "hostPort in the restricted namespace", overlay: "deployment", file: "components/deployment/backend.yaml",
			old: "              containerPort: 9091\n", new: "              containerPort: 9091\n              hostPort: 9091\n",
			want: []string{"Deployment knowingnode/backend", "hostPort"},
		},
		{
			name: "target names a missing Service", overlay: "deployment", file: "components/deployment/frontend/kustomization.yaml",
			old: "dns:///backend.knowingnode", new: "dns:///backnd.knowingnode",
			want: []string{"Deployment knowingnode/frontend-deployment", "env[TARGETS] backend=dns", "Service knowingnode/backnd"},
		},
		{
			name: "srv target on a Service without the named port", overlay: "daemonset", file: "components/daemonset/frontend/kustomization.yaml",
			old: "srv:///_grpc._tcp", new: "srv:///_grpcx._tcp",
			want: []string{"Deployment knowingnode/frontend-daemonset", `no port named "grpcx"`},
		},
		{
			name: "probe on an undeclared port", overlay: "statefulset", file: "components/statefulset/backend.yaml",
			old: "          readinessProbe:\n            grpc:\n              port: 9090\n", new: "          readinessProbe:\n            grpc:\n              port: 9999\n",
			want: []string{"StatefulSet knowingnode/backend-sts", "containers[backend].readinessProbe.grpc.port 9999 is not a declared containerPort"},
		},
		{
			name: "named probe port undeclared", overlay: "deployment", file: "frontend/frontend.yaml",
			old: "              path: /readyz\n              port: http\n", new: "              path: /readyz\n              port: web\n",
			want: []string{"Deployment knowingnode/frontend-deployment", "readinessProbe.httpGet.port web is not a declared containerPort"},
		},
		{
			name: "grace period shorter than the drain", overlay: "daemonset", file: "components/daemonset/backend.yaml",
			old: "terminationGracePeriodSeconds: 20", new: "terminationGracePeriodSeconds: 10",
			want: []string{"DaemonSet knowingnode-node/backend-ds", "terminationGracePeriodSeconds is 10"},
		},
		{
			name: "namespace no longer enforces restricted", overlay: "statefulset", file: "base/namespace.yaml",
			old: "pod-security.kubernetes.io/enforce: restricted", new: "pod-security.kubernetes.io/enforce: baseline",
			want: []string{"Namespace knowingnode", "pod-security.kubernetes.io/enforce", "want restricted"},
		},
		{
			name: "statefulset target on a ClusterIP Service", overlay: "statefulset", file: "components/statefulset/backend.yaml",
			old: "  clusterIP: None\n", new: "",
			want: []string{"Deployment knowingnode/frontend-statefulset", "Service knowingnode/backend-sts must be headless"},
		},
		{
			name: "downward env missing", overlay: "deployment", file: "components/deployment/backend.yaml",
			old: "fieldPath: status.hostIP", new: "fieldPath: status.podIP",
			want: []string{"Deployment knowingnode/backend", "env[NODE_IP] must come from the Downward API fieldRef status.hostIP"},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			copyDeploy(t, deployDir, dir)
			path := filepath.Join(dir, c.file)
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(string(b), c.old) {
				t.Fatalf("%s does not contain %q: the fixture is stale", c.file, c.old)
			}
			if err := os.WriteFile(path, []byte(strings.Replace(string(b), c.old, c.new, 1)), 0o644); err != nil {
				t.Fatal(err)
			}
			err = lint(filepath.Join(dir, "overlays", c.overlay))
			if err == nil {
				t.Fatal("the broken copy passed every check")
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not mention %q:\n%v", w, err)
				}
			}
		})
	}
}

func lint(dir string) error {
	out, err := Render(dir)
	if err != nil {
		return err
	}
	set, err := Decode(out)
	if err != nil {
		return err
	}
	return Check(set, exempt)
}

// copyDeploy copies the kustomize inputs of deploy/ (YAML only).
func copyDeploy(t *testing.T, from, to string) {
	t.Helper()
	err := filepath.WalkDir(from, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(from, p)
		if d.IsDir() {
			if rel == "e2e" || rel == "local" || rel == "image" {
				return filepath.SkipDir
			}
			return os.MkdirAll(filepath.Join(to, rel), 0o755)
		}
		if !strings.HasSuffix(p, ".yaml") {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(to, rel), b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
}
