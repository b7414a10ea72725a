package e2e

import (
	"github.com/knowingnode/knowingnode/harness/poll"

	"context"
	"fmt"
	"net"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/yaml"

	"github.com/knowingnode/knowingnode/deploy/e2e/internal/manifest"
)

// exempt is the one accepted Pod Security deviation: the DaemonSet's
// hostPort (see deploy/components/daemonset/namespace.yaml).
var exempt = manifest.Options{Exempt: map[string][]string{"DaemonSet knowingnode-node/backend-ds": {"hostPort"}}}

func overlayDir(name string) string { return filepath.Join(deployDir, "overlays", name) }

// load renders an overlay with the kustomize API and runs the static checks.
func load(t *testing.T, overlay string) *manifest.Set {
	t.Helper()
	out, err := manifest.Render(overlayDir(overlay))
	if err != nil {
		t.Fatal(err)
	}
	set, err := manifest.Decode(out)
	if err != nil {
		t.Fatal(err)
	}
	if err := manifest.Check(set, exempt); err != nil {
		t.Fatalf("static checks:\n%v", err)
	}
	return set
}

// TestKubectlKustomize: the pinned kubectl renders every overlay to the same
// objects as the kustomize API the static checks use.
func TestKubectlKustomize(t *testing.T) {
	overlays := []string{"deployment", "nodeport", "daemonset", "statefulset", "all"}
	line := report(t, "kubectl kustomize")
	*line = fmt.Sprintf("%d overlays render with kubectl %s as with the kustomize API, strict-decode and pass the static checks", len(overlays), kubectlVersion(t))
	for _, o := range overlays {
		t.Run(o, func(t *testing.T) {
			out, _, err := cl.Kubectl(t.Context(), "kustomize", overlayDir(o))
			if err != nil {
				t.Fatal(err)
			}
			viaKubectl, err := manifest.Decode([]byte(out))
			if err != nil {
				t.Fatal(err)
			}
			if err := manifest.Check(viaKubectl, exempt); err != nil {
				t.Fatalf("static checks of kubectl's rendering:\n%v", err)
			}
			api, err := manifest.Render(overlayDir(o))
			if err != nil {
				t.Fatal(err)
			}
			viaAPI, err := manifest.Decode(api)
			if err != nil {
				t.Fatal(err)
			}
			viaKubectl.Sort()
			viaAPI.Sort()
			if !equality.Semantic.DeepEqual(viaKubectl, viaAPI) {
				a, _ := yaml.Marshal(viaKubectl)
				b, _ := yaml.Marshal(viaAPI)
				t.Errorf("kubectl kustomize and the kustomize API disagree:\n%s", lineDiff(string(a), string(b)))
			}
		})
	}
}

// lineDiff shows the lines of a that b lacks and the other way round.
func lineDiff(a, b string) string {
	var out []string
	al, bl := strings.Split(a, "\n"), strings.Split(b, "\n")
	for _, l := range al {
		if !slices.Contains(bl, l) {
			out = append(out, "- "+l)
		}
	}
	for _, l := range bl {
		if !slices.Contains(al, l) {
			out = append(out, "+ "+l)
		}
	}
	return strings.Join(out, "\n")
}

func kubectlVersion(t *testing.T) string {
	out, _, err := cl.Kubectl(t.Context(), "version", "--client", "-o", "yaml")
	if err != nil {
		return "?"
	}
	var v struct {
		ClientVersion struct{ GitVersion string } `json:"clientVersion"`
	}
	if err := yaml.Unmarshal([]byte(out), &v); err != nil {
		return "?"
	}
	return v.ClientVersion.GitVersion
}

// overlayCase is one apply of an overlay and what the cluster must then show.
type overlayCase struct {
	overlay string
	// pods a Service's EndpointSlices must list, by "namespace/service";
	// -1 means one per node.
	endpoints map[string]int
	extra     func(t *testing.T, set *manifest.Set) string
}

// TestOverlays applies the overlays one after another, as a user would, into
// one cluster: deployment, then nodeport over it, statefulset and daemonset
// beside it, and finally all (which must change nothing).
func TestOverlays(t *testing.T) {
	cases := []overlayCase{
		{overlay: "deployment", endpoints: map[string]int{"knowingnode/backend": 3, "knowingnode/frontend-deployment": 2}, extra: checkClusterIP},
		{overlay: "nodeport", endpoints: map[string]int{"knowingnode/backend": 3, "knowingnode/frontend-deployment": 2}, extra: checkNodePorts},
		{overlay: "statefulset", endpoints: map[string]int{"knowingnode/backend-sts": 3, "knowingnode/frontend-statefulset": 2}, extra: checkStatefulSet},
		{overlay: "daemonset", endpoints: map[string]int{"knowingnode-node/backend-ds": -1, "knowingnode/frontend-daemonset": 2, "knowingnode/frontend-peers-daemonset": 2}, extra: checkDaemonSet},
		{overlay: "all", endpoints: map[string]int{
			"knowingnode/backend": 3, "knowingnode/backend-sts": 3, "knowingnode-node/backend-ds": -1,
			"knowingnode/frontend-deployment": 2, "knowingnode/frontend-statefulset": 2, "knowingnode/frontend-daemonset": 2,
			"knowingnode/frontend-peers-daemonset": 2,
		}, extra: checkConverged},
	}
	for _, c := range cases {
		t.Run(c.overlay, func(t *testing.T) {
			line := report(t, "overlay "+c.overlay)
			t0 := time.Now()
			detail := applyOverlay(t, c)
			*line = fmt.Sprintf("%s (%s)", detail, time.Since(t0).Round(10*time.Millisecond))
		})
	}
}

// applyAndRollout applies an overlay server-side, as `kubectl apply -k`
// does, and waits for every workload's rollout as kubectl reports it.
func applyAndRollout(t *testing.T, overlay string) (set *manifest.Set, stderr string, applied, rolled time.Duration) {
	t.Helper()
	ctx := t.Context()
	set = load(t, overlay)
	t0 := time.Now()
	_, stderr, err := cl.Kubectl(ctx, "apply", "--server-side", "--field-manager=knowingnode-e2e", "--force-conflicts", "-k", overlayDir(overlay))
	if err != nil {
		t.Fatal(err)
	}
	applied = time.Since(t0)
	t1 := time.Now()
	for _, w := range workloads(set) {
		if _, _, err := cl.Kubectl(ctx, "rollout", "status", "-n", w.ns, w.kind+"/"+w.name, "--timeout=120s"); err != nil {
			t.Fatalf("rollout: %v", err)
		}
	}
	return set, stderr, applied, time.Since(t1)
}

func applyOverlay(t *testing.T, c overlayCase) string {
	// Server-side apply, with the restricted standard enforced in the
	// namespace: kubectl prints Pod Security warnings on stderr.
	set, stderr, applied, rolled := applyAndRollout(t, c.overlay)

	// The only warning allowed, and expected whenever the DaemonSet is
	// applied: its hostPort, warned about (not enforced) in its own namespace.
	const hostPortWarning = `Warning: would violate PodSecurity "restricted:latest": hostPort (container "backend" uses hostPort 9090)`
	warned := false
	for _, line := range strings.Split(strings.TrimSpace(stderr), "\n") {
		switch {
		case line == "":
		case line == hostPortWarning:
			warned = true
		default:
			t.Errorf("apply warned: %s", line)
		}
	}
	if wantWarning := len(set.DaemonSets) > 0; warned != wantWarning {
		t.Errorf("hostPort warning printed: %v, want %v (stderr: %q)", warned, wantWarning, stderr)
	}

	// EndpointSlices list exactly the ready pods the Service selects.
	var eps []string
	for key, want := range c.endpoints {
		if want < 0 {
			want = len(cl.Nodes)
		}
		ns, name, _ := strings.Cut(key, "/")
		ips := waitEndpoints(t, ns, name, want)
		eps = append(eps, fmt.Sprintf("%s=%d", name, len(ips)))
	}
	sort.Strings(eps)

	// Cluster DNS answers for every Service of the overlay.
	for _, svc := range set.Services {
		checkServiceDNS(t, svc)
	}
	checkAutoscalersAndBudgets(t, set)
	detail := fmt.Sprintf("%d objects applied server-side in %s, rollouts %s, EndpointSlices %s, DNS A/SRV ok, HPAs able to scale, PDBs cover their pods",
		len(set.Namespaces)+len(set.Deployments)+len(set.StatefulSets)+len(set.DaemonSets)+len(set.Services)+len(set.HPAs)+len(set.PDBs),
		applied.Round(10*time.Millisecond), rolled.Round(10*time.Millisecond), strings.Join(eps, " "))
	if c.extra != nil {
		if more := c.extra(t, set); more != "" {
			detail += "; " + more
		}
	}
	return detail
}

// workloadRef names a workload as kubectl does, with its pod selector.
type workloadRef struct{ kind, ns, name, selector string }

func workloads(s *manifest.Set) []workloadRef {
	var out []workloadRef
	for _, d := range s.Deployments {
		out = append(out, workloadRef{"deployment", d.Namespace, d.Name, metav1.FormatLabelSelector(d.Spec.Selector)})
	}
	for _, d := range s.StatefulSets {
		out = append(out, workloadRef{"statefulset", d.Namespace, d.Name, metav1.FormatLabelSelector(d.Spec.Selector)})
	}
	for _, d := range s.DaemonSets {
		out = append(out, workloadRef{"daemonset", d.Namespace, d.Name, metav1.FormatLabelSelector(d.Spec.Selector)})
	}
	return out
}

// readyPodIPs returns the IPs of the Running, Ready, not terminating pods a
// Service selects.
func readyPodIPs(ctx context.Context, svc *corev1.Service) ([]string, []corev1.Pod, error) {
	pods, err := cl.Client.CoreV1().Pods(svc.Namespace).List(ctx, metav1.ListOptions{
		LabelSelector: labels.SelectorFromSet(svc.Spec.Selector).String(),
	})
	if err != nil {
		return nil, nil, err
	}
	var ips []string
	var ready []corev1.Pod
	for _, p := range pods.Items {
		if p.DeletionTimestamp != nil || p.Status.Phase != corev1.PodRunning || p.Status.PodIP == "" {
			continue
		}
		for _, cond := range p.Status.Conditions {
			if cond.Type == corev1.PodReady && cond.Status == corev1.ConditionTrue {
				ips = append(ips, p.Status.PodIP)
				ready = append(ready, p)
			}
		}
	}
	sort.Strings(ips)
	return ips, ready, nil
}

// sliceIPs returns the ready addresses of a Service's EndpointSlices.
func sliceIPs(ctx context.Context, ns, name string) ([]string, error) {
	slices_, err := cl.Client.DiscoveryV1().EndpointSlices(ns).List(ctx, metav1.ListOptions{
		LabelSelector: discoveryv1.LabelServiceName + "=" + name,
	})
	if err != nil {
		return nil, err
	}
	var ips []string
	for _, s := range slices_.Items {
		for _, e := range s.Endpoints {
			if e.Conditions.Ready != nil && *e.Conditions.Ready {
				ips = append(ips, e.Addresses...)
			}
		}
	}
	sort.Strings(ips)
	return ips, nil
}

// waitEndpoints waits until the Service's EndpointSlices list exactly its
// ready pods, and that there are want of them.
func waitEndpoints(t *testing.T, ns, name string, want int) []string {
	t.Helper()
	var got []string
	poll.T(t, 60*time.Second, "the Service's endpoints to be its ready pods", func(ctx context.Context) error {
		svc, err := cl.Client.CoreV1().Services(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		pods, _, err := readyPodIPs(ctx, svc)
		if err != nil {
			return err
		}
		if got, err = sliceIPs(ctx, ns, name); err != nil {
			return err
		}
		if len(pods) != want || !slices.Equal(got, pods) {
			return fmt.Errorf("Service %s/%s: EndpointSlices %v, ready pods %v, want %d", ns, name, got, pods, want)
		}
		return nil
	})
	return got
}

func resolver() *net.Resolver {
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, cl.DNSAddr)
	}}
}

func fqdn(name, ns string) string { return name + "." + ns + ".svc.cluster.local." }

func lookupA(ctx context.Context, name string) ([]string, error) {
	ips, err := resolver().LookupHost(ctx, name)
	sort.Strings(ips)
	return ips, err
}

// checkServiceDNS: a ClusterIP Service has one A record, its VIP, and one SRV
// per named port pointing at its own name; a headless Service has one A per
// ready pod and one SRV per pod and named port.
func checkServiceDNS(t *testing.T, svc *corev1.Service) {
	t.Helper()
	name := fqdn(svc.Name, svc.Namespace)
	poll.T(t, 30*time.Second, "cluster DNS to answer for "+name, func(ctx context.Context) error {
		live, err := cl.Client.CoreV1().Services(svc.Namespace).Get(ctx, svc.Name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		want := []string{live.Spec.ClusterIP}
		headless := live.Spec.ClusterIP == corev1.ClusterIPNone
		if headless {
			if want, err = sliceIPs(ctx, svc.Namespace, svc.Name); err != nil {
				return err
			}
		}
		got, err := lookupA(ctx, name)
		if err != nil {
			return fmt.Errorf("A %s: %w", name, err)
		}
		if !slices.Equal(got, want) {
			return fmt.Errorf("A %s = %v, want %v", name, got, want)
		}
		for _, p := range live.Spec.Ports {
			_, srvs, err := resolver().LookupSRV(ctx, p.Name, "tcp", svc.Name+"."+svc.Namespace+".svc.cluster.local.")
			if err != nil {
				return fmt.Errorf("SRV _%s._tcp.%s: %w", p.Name, name, err)
			}
			var targets []string
			for _, s := range srvs {
				if s.Port != uint16(p.Port) {
					return fmt.Errorf("SRV _%s._tcp.%s port %d, want %d", p.Name, name, s.Port, p.Port)
				}
				targets = append(targets, s.Target)
			}
			if !headless && !slices.Equal(targets, []string{name}) {
				return fmt.Errorf("SRV _%s._tcp.%s targets %v, want [%s]", p.Name, name, targets, name)
			}
			if headless {
				var ips []string
				for _, tg := range targets {
					a, err := lookupA(ctx, tg)
					if err != nil || len(a) != 1 {
						return fmt.Errorf("SRV target %s resolves to %v, %v", tg, a, err)
					}
					ips = append(ips, a[0])
				}
				sort.Strings(ips)
				if !slices.Equal(ips, want) {
					return fmt.Errorf("SRV _%s._tcp.%s targets resolve to %v, want %v", p.Name, name, ips, want)
				}
			}
		}
		return nil
	})
}

// checkAutoscalersAndBudgets asks the real controllers: every HPA can reach
// its target's scale subresource (there is no metrics server, so it cannot
// act on CPU), and every PDB counts exactly its workload's pods.
func checkAutoscalersAndBudgets(t *testing.T, set *manifest.Set) {
	t.Helper()
	for _, h := range set.HPAs {
		poll.T(t, 30*time.Second, "HPA "+h.Name+" to be able to scale", func(ctx context.Context) error {
			live, err := cl.Client.AutoscalingV2().HorizontalPodAutoscalers(h.Namespace).Get(ctx, h.Name, metav1.GetOptions{})
			if err != nil {
				return err
			}
			for _, c := range live.Status.Conditions {
				if c.Type == autoscalingv2.AbleToScale {
					if c.Status != corev1.ConditionTrue {
						return fmt.Errorf("HPA %s AbleToScale %s: %s", h.Name, c.Status, c.Message)
					}
					return nil
				}
			}
			return fmt.Errorf("HPA %s has no AbleToScale condition yet", h.Name)
		})
	}
	for _, b := range set.PDBs {
		poll.T(t, 30*time.Second, "PDB "+b.Name+" to count its pods", func(ctx context.Context) error {
			live, err := cl.Client.PolicyV1().PodDisruptionBudgets(b.Namespace).Get(ctx, b.Name, metav1.GetOptions{})
			if err != nil {
				return err
			}
			sel, err := metav1.LabelSelectorAsSelector(b.Spec.Selector)
			if err != nil {
				return err
			}
			pods, err := cl.Client.CoreV1().Pods(b.Namespace).List(ctx, metav1.ListOptions{LabelSelector: sel.String()})
			if err != nil {
				return err
			}
			want := int32(len(pods.Items))
			if live.Status.ExpectedPods != want || live.Status.CurrentHealthy != want || live.Status.DisruptionsAllowed < 1 {
				return fmt.Errorf("PDB %s: expected %d healthy %d allowed %d, want %d pods and at least one disruption allowed",
					b.Name, live.Status.ExpectedPods, live.Status.CurrentHealthy, live.Status.DisruptionsAllowed, want)
			}
			return nil
		})
	}
}

// checkConverged: once applied, the overlay is what the cluster runs:
// `kubectl diff` (a server-side dry run) finds nothing to change, and the
// plain client-side `kubectl apply -k` the issue names is accepted too.
func checkConverged(t *testing.T, set *manifest.Set) string {
	ctx := t.Context()
	if out, _, err := cl.Kubectl(ctx, "diff", "--server-side", "--field-manager=knowingnode-e2e", "--force-conflicts", "-k", overlayDir("all")); err != nil {
		t.Errorf("kubectl diff after apply: %v\n%s", err, out)
	}
	if _, stderr, err := cl.Kubectl(ctx, "apply", "--dry-run=server", "-k", overlayDir("all")); err != nil {
		t.Errorf("client-side kubectl apply -k: %v", err)
	} else if strings.Contains(stderr, "Warning") && !strings.Contains(stderr, "hostPort") {
		t.Errorf("client-side kubectl apply -k warned: %s", stderr)
	}
	return "kubectl diff finds nothing to change; client-side apply -k accepted"
}

func checkClusterIP(t *testing.T, set *manifest.Set) string {
	svc, err := cl.Client.CoreV1().Services("knowingnode").Get(t.Context(), "backend", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if svc.Spec.ClusterIP == "" || svc.Spec.ClusterIP == corev1.ClusterIPNone {
		t.Fatalf("backend ClusterIP = %q", svc.Spec.ClusterIP)
	}
	spread := nodesOf(t, "knowingnode", "component=backend,controlling=deployment")
	if len(spread) != 3 {
		t.Errorf("3 backend pods on %d nodes %v, want spread over 3 (topologySpreadConstraints)", len(spread), spread)
	}
	return fmt.Sprintf("backend A = VIP %s, 3 pods on 3 nodes", svc.Spec.ClusterIP)
}

func checkNodePorts(t *testing.T, set *manifest.Set) string {
	want := map[string]int32{"backend/grpc": 30091, "frontend-deployment/http": 30080, "frontend-deployment/grpc": 30090}
	for key, port := range want {
		name, portName, _ := strings.Cut(key, "/")
		svc, err := cl.Client.CoreV1().Services("knowingnode").Get(t.Context(), name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if svc.Spec.Type != corev1.ServiceTypeNodePort {
			t.Errorf("Service %s type %s", name, svc.Spec.Type)
		}
		for _, p := range svc.Spec.Ports {
			if p.Name == portName && p.NodePort != port {
				t.Errorf("Service %s port %s nodePort %d, want %d", name, portName, p.NodePort, port)
			}
		}
	}
	return "nodePorts 30080/30090 (frontend) 30091 (backend) allocated"
}

func checkStatefulSet(t *testing.T, set *manifest.Set) string {
	poll.T(t, 30*time.Second, "the StatefulSet's pods", func(ctx context.Context) error {
		for i := range 3 {
			pod, err := cl.Client.CoreV1().Pods("knowingnode").Get(ctx, fmt.Sprintf("backend-sts-%d", i), metav1.GetOptions{})
			if err != nil {
				return err
			}
			name := fmt.Sprintf("backend-sts-%d.backend-sts.knowingnode.svc.cluster.local.", i)
			got, err := lookupA(ctx, name)
			if err != nil {
				return fmt.Errorf("A %s: %w", name, err)
			}
			if !slices.Equal(got, []string{pod.Status.PodIP}) {
				return fmt.Errorf("A %s = %v, want pod IP %s", name, got, pod.Status.PodIP)
			}
		}
		return nil
	})
	return "per-pod names backend-sts-{0,1,2}.backend-sts resolve to their pods"
}

func checkDaemonSet(t *testing.T, set *manifest.Set) string {
	ctx := t.Context()
	var ds *appsv1.DaemonSet
	ds, err := cl.Client.AppsV1().DaemonSets("knowingnode-node").Get(ctx, "backend-ds", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if int(ds.Status.NumberReady) != len(cl.Nodes) {
		t.Errorf("DaemonSet ready %d, want %d", ds.Status.NumberReady, len(cl.Nodes))
	}
	nodes := nodesOf(t, "knowingnode-node", "component=backend,controlling=daemonset")
	if !slices.Equal(nodes, cl.Nodes) {
		t.Errorf("DaemonSet pods on %v, want one on each of %v", nodes, cl.Nodes)
	}
	return fmt.Sprintf("one DaemonSet pod per node %v", nodes)
}

// nodesOf returns the distinct nodes the selected pods run on, failing when
// two share one (for the DaemonSet) is left to the caller's comparison.
func nodesOf(t *testing.T, ns, selector string) []string {
	pods, err := cl.Client.CoreV1().Pods(ns).List(t.Context(), metav1.ListOptions{LabelSelector: selector})
	if err != nil {
		t.Fatal(err)
	}
	var nodes []string
	for _, p := range pods.Items {
		if p.DeletionTimestamp == nil && !slices.Contains(nodes, p.Spec.NodeName) {
			nodes = append(nodes, p.Spec.NodeName)
		}
	}
	sort.Strings(nodes)
	return nodes
}
