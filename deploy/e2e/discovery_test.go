package e2e

import (
	"github.com/knowingnode/knowingnode/harness/poll"

	"context"
	"fmt"
	"net"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/knowingnode/knowingnode/deploy/e2e/internal/manifest"
	"github.com/knowingnode/knowingnode/internal/discovery"
)

// frontendTarget returns the frontend's "backend" target exactly as its
// manifest configures it (TARGETS, REFRESH_INTERVAL), parsed by the
// frontend's own code, pointed at the test's CoreDNS instead of the pod's
// resolver.
func frontendTarget(t *testing.T, set *manifest.Set, controlling string) (discovery.Spec, time.Duration) {
	t.Helper()
	for _, d := range set.Deployments {
		if d.Spec.Template.Labels["component"] != "frontend" || d.Spec.Template.Labels["controlling"] != controlling {
			continue
		}
		env := map[string]string{}
		for _, e := range d.Spec.Template.Spec.Containers[0].Env {
			env[e.Name] = e.Value
		}
		specs, err := manifest.ParseTargets(env["TARGETS"])
		if err != nil || len(specs) != 1 {
			t.Fatalf("%s TARGETS %q: %v", d.Name, env["TARGETS"], err)
		}
		interval, err := time.ParseDuration(env["REFRESH_INTERVAL"])
		if err != nil {
			t.Fatalf("%s REFRESH_INTERVAL: %v", d.Name, err)
		}
		sp := specs[0]
		sp.Server = cl.DNSAddr
		return sp, interval
	}
	t.Fatalf("no frontend controlling %s", controlling)
	return discovery.Spec{}, 0
}

// startTarget runs the frontend's discovery loop for spec until the test ends.
func startTarget(t *testing.T, spec discovery.Spec, interval time.Duration) *discovery.Target {
	t.Helper()
	tg := discovery.NewTarget(spec, discovery.NewResolver(discovery.NetLookuper(cl.DNSAddr)), discovery.TargetOptions{Interval: interval})
	if err := tg.Refresh(t.Context()); err != nil {
		t.Fatalf("first refresh of %s: %v", spec.Raw, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); tg.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return tg
}

// discovered returns the IPs of the target's current endpoints, checking
// every one carries the expected port.
func discovered(tg *discovery.Target, port string) ([]string, error) {
	st := tg.State()
	var ips []string
	for _, e := range st.Endpoints {
		host, p, err := net.SplitHostPort(e.Addr)
		if err != nil {
			return nil, err
		}
		if p != port {
			return nil, fmt.Errorf("endpoint %s: port %s, want %s", e.Addr, p, port)
		}
		ips = append(ips, host)
	}
	sort.Strings(ips)
	return ips, nil
}

// follow waits until the target's endpoints are exactly the Service's
// EndpointSlice addresses (or, for a ClusterIP Service, its VIP), and returns
// how long that took from the moment the EndpointSlices held want pods.
func follow(t *testing.T, tg *discovery.Target, svc *corev1.Service, want int, bound time.Duration) time.Duration {
	t.Helper()
	slicesSettled := time.Now()
	poll.T(t, 60*time.Second, "the EndpointSlices to list the pods", func(ctx context.Context) error {
		ips, err := sliceIPs(ctx, svc.Namespace, svc.Name)
		if err != nil {
			return err
		}
		if len(ips) != want {
			return fmt.Errorf("EndpointSlices of %s list %d pods, want %d", svc.Name, len(ips), want)
		}
		slicesSettled = time.Now()
		return nil
	})
	var took time.Duration
	poll.T(t, bound+10*time.Second, "discovery to follow the EndpointSlices", func(ctx context.Context) error {
		want := []string{svc.Spec.ClusterIP}
		if svc.Spec.ClusterIP == corev1.ClusterIPNone {
			var err error
			if want, err = sliceIPs(ctx, svc.Namespace, svc.Name); err != nil {
				return err
			}
		}
		got, err := discovered(tg, "9090")
		if err != nil {
			return err
		}
		if !slices.Equal(got, want) {
			return fmt.Errorf("discovery %s sees %v, EndpointSlices say %v (last error: %v)", tg.Spec().Raw, got, want, tg.State().LastError)
		}
		took = time.Since(slicesSettled)
		return nil
	})
	if took > bound {
		t.Errorf("discovery %s followed the EndpointSlices after %s, more than its refresh interval allows (%s)", tg.Spec().Raw, took.Round(time.Millisecond), bound)
	}
	return took
}

func scale(t *testing.T, kind, ns, name string, replicas int) {
	t.Helper()
	if _, _, err := cl.Kubectl(t.Context(), "scale", "-n", ns, kind+"/"+name, fmt.Sprintf("--replicas=%d", replicas)); err != nil {
		t.Fatal(err)
	}
}

// TestDiscovery points the frontend's own discovery code, configured as each
// frontend manifest configures it, at the cluster's CoreDNS: it must resolve
// to exactly the pods in the EndpointSlices (the VIP for a ClusterIP
// Service), and follow a `kubectl scale` within its refresh interval.
func TestDiscovery(t *testing.T) {
	set, _, _, _ := applyAndRollout(t, "all")
	ctx := t.Context()
	svc := func(ns, name string) *corev1.Service {
		s, err := cl.Client.CoreV1().Services(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	// The DNS TTL does not add to the bound: CoreDNS here has no cache, and
	// the frontend's resolver keeps none. The slack covers CoreDNS's informer
	// and one refresh's own duration on a busy machine.
	const slack = 2 * time.Second

	cases := []struct {
		controlling string
		kind, ns    string
		workload    string
		service     string
		steps       []int // replicas to scale to, in order; none for a DaemonSet
	}{
		{"statefulset", "statefulset", "knowingnode", "backend-sts", "backend-sts", []int{5, 2, 3}},
		{"daemonset", "", "knowingnode-node", "backend-ds", "backend-ds", nil},
		{"deployment", "deployment", "knowingnode", "backend", "backend", []int{5, 3}},
	}
	for _, c := range cases {
		t.Run(c.controlling, func(t *testing.T) {
			line := report(t, "discovery "+c.controlling)
			spec, interval := frontendTarget(t, set, c.controlling)
			tg := startTarget(t, spec, interval)
			s := svc(c.ns, c.service)
			current := len(cl.Nodes)
			if c.kind != "" {
				current = 3
			}
			var steps []string
			took := follow(t, tg, s, current, interval+slack)
			steps = append(steps, fmt.Sprintf("%d pods resolved (%s)", current, took.Round(10*time.Millisecond)))
			for _, n := range c.steps {
				scale(t, c.kind, c.ns, c.workload, n)
				took := follow(t, tg, s, n, interval+slack)
				steps = append(steps, fmt.Sprintf("scale %d->%d followed in %s", current, n, took.Round(10*time.Millisecond)))
				current = n
			}
			if c.kind == "" {
				// A DaemonSet scales with the nodes: add one, then take it away.
				node, err := cl.AddNode(ctx)
				if err != nil {
					t.Fatal(err)
				}
				took := follow(t, tg, s, current+1, interval+slack)
				steps = append(steps, fmt.Sprintf("node %s added, its pod followed in %s", node, took.Round(10*time.Millisecond)))
				if err := cl.RemoveNode(ctx, node); err != nil {
					t.Fatal(err)
				}
				took = follow(t, tg, s, current, interval+slack)
				steps = append(steps, fmt.Sprintf("removed, followed in %s", took.Round(10*time.Millisecond)))
			}
			what := "pod IPs"
			if s.Spec.ClusterIP != corev1.ClusterIPNone {
				what = "the VIP " + s.Spec.ClusterIP + " (a ClusterIP hides scaling)"
			}
			*line = fmt.Sprintf("%s -> %s; %s; refresh %s", spec.QType, what, strings.Join(steps, ", "), interval)
		})
	}

	// A dns target on a headless Service resolves to every pod too.
	t.Run("dns-headless", func(t *testing.T) {
		line := report(t, "discovery dns-headless")
		spec, err := discovery.ParseTarget("backend=dns://" + cl.DNSAddr + "/backend-sts.knowingnode.svc.cluster.local:9090")
		if err != nil {
			t.Fatal(err)
		}
		tg := startTarget(t, spec, time.Second)
		took := follow(t, tg, svc("knowingnode", "backend-sts"), 3, time.Second+slack)
		*line = fmt.Sprintf("dns -> the 3 StatefulSet pod IPs (%s)", took.Round(10*time.Millisecond))
	})
}
