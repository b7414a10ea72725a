package e2e

import (
	"context"
	"fmt"
	"maps"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/knowingnode/knowingnode/deploy/e2e/internal/cluster"
	knowingnodev1 "github.com/knowingnode/knowingnode/gen/knowingnode/v1"
	"github.com/knowingnode/knowingnode/harness/proc"
)

// sliceBackend is one real backend process and how the test's
// EndpointSlices describe it.
type sliceBackend struct {
	pod, ip, node, zone string
	addr                string // host:port it bound (port chosen by the kernel)
}

// wantEndpoint is what ListTargets must show for one address.
type wantEndpoint struct {
	ready, serving, terminating bool
	node, zone, ref             string
	slices                      string
}

// TestEndpointSlices points the real frontend binary, running outside the
// cluster with --kubeconfig, at a kubernetes:/// target: a Service without a
// selector whose hand-made EndpointSlices (several of them, overlapping,
// IPv4 and IPv6, with not-ready and terminating endpoints, in two zones)
// list real backend processes on addresses of this host's loopback
// interface. It checks that
// ListTargets shows every endpoint with its conditions, that fan-out
// reaches exactly the ready ones, that slice updates and deletes are
// followed, and that while kube-apiserver is stopped the frontend keeps the
// last set and reports the error, then resumes.
//
// It runs against a control plane of its own (etcd and kube-apiserver only,
// started for this test and stopped after it), not the shared one: stopping
// the shared kube-apiserver left its kwok unable to ready pods afterwards, and
// later scenarios timed out. Restarting kwok after the outage would fix the one
// symptom seen, but not the controllers' and scheduler's watches, nor a test
// that ran concurrently; a separate plane isolates the outage completely, costs
// a few seconds, and needs no nodes: the Service has no selector and the test
// writes the EndpointSlices itself.
func TestEndpointSlices(t *testing.T) {
	line := report(t, "endpointslices")
	ctx := t.Context()
	t0 := time.Now()
	own, err := cluster.Start(ctx, cluster.Config{BinDir: k8sBin, APIOnly: true, Logf: t.Logf})
	if err != nil {
		t.Fatalf("the test's own control plane: %v", err)
	}
	t.Cleanup(func() {
		if err := own.Stop(t.Failed()); err != nil {
			t.Errorf("stop the test's own control plane: %v", err)
		}
		if t.Failed() {
			t.Logf("its logs are kept in %s", filepath.Join(own.Dir, "logs"))
		}
	})
	ownUp := time.Since(t0)
	const ns, svcName = "e2e-slices", "sliced"
	if _, err := own.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: svcName, Namespace: ns},
		Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{
			{Name: "grpc", Port: 9090, TargetPort: intstr.FromString("grpc")},
		}},
	}
	if _, err := own.Client.CoreV1().Services(ns).Create(ctx, svc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	bin := buildBinaries(t)
	bs := []*sliceBackend{
		{pod: "be-0", ip: "198.18.15.1", node: "node-0", zone: "zone-a"},
		{pod: "be-1", ip: "198.18.15.2", node: "node-1", zone: "zone-b"},
		{pod: "be-2", ip: "198.18.15.3", node: "node-2", zone: "zone-a"},
		{pod: "be-3", ip: "198.18.15.4", node: "node-1", zone: "zone-b"},
		{pod: "be-6", ip: "fd00:15::6", node: "node-0", zone: "zone-a"},
	}
	for _, b := range bs {
		addLocalAddr(t, b.ip)
		p := proc.Start(t, filepath.Join(bin, "backend"),
			[]string{"POD_NAME=" + b.pod, "POD_NAMESPACE=" + ns, "NODE_NAME=" + b.node, "POD_IP=" + b.ip, "DRAIN_DELAY=0s"},
			"--grpc-addr", net.JoinHostPort(b.ip, "0"), "--admin-addr", "", "--downward-dir", "")
		b.addr = p.Addrs["grpc"]
		if b.addr == "" {
			t.Fatalf("backend %s logged no grpc address: %v", b.pod, p.Addrs)
		}
		t.Cleanup(func() { p.Stop(t) })
	}
	be0, be1, be2, be3, be6 := bs[0], bs[1], bs[2], bs[3], bs[4]

	// Each backend's port was chosen by the kernel, so each slice carries
	// the port of the backends it lists (ports are per slice): that also
	// makes the frontend look the named port up slice by slice.
	slicesAPI := own.Client.DiscoveryV1().EndpointSlices(ns)
	mk := func(name string, at discoveryv1.AddressType, port string, eps ...discoveryv1.Endpoint) *discoveryv1.EndpointSlice {
		return &discoveryv1.EndpointSlice{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: map[string]string{
				discoveryv1.LabelServiceName: svcName,
				discoveryv1.LabelManagedBy:   "knowingnode-e2e",
			}},
			AddressType: at,
			Ports:       []discoveryv1.EndpointPort{{Name: ptrTo("grpc"), Port: ptrTo(portOf(t, port)), Protocol: ptrTo(corev1.ProtocolTCP)}},
			Endpoints:   eps,
		}
	}
	initial := []*discoveryv1.EndpointSlice{
		mk("sliced-a", discoveryv1.AddressTypeIPv4, be0.addr, sliceEP(be0, true, true, false)),
		mk("sliced-b", discoveryv1.AddressTypeIPv4, be1.addr, withHints(sliceEP(be1, true, true, false), "zone-b")),
		// be-0 again, as a slice being drained would still list it: the
		// merged endpoint keeps the ready copy and names both slices.
		mk("sliced-c", discoveryv1.AddressTypeIPv4, be0.addr, sliceEP(be0, false, false, true)),
		mk("sliced-d", discoveryv1.AddressTypeIPv4, be2.addr, sliceEP(be2, false, false, false)),
		mk("sliced-e", discoveryv1.AddressTypeIPv4, be3.addr, sliceEP(be3, false, true, true)),
		mk("sliced-v6", discoveryv1.AddressTypeIPv6, be6.addr, sliceEP(be6, true, true, false)),
	}
	for _, s := range initial {
		if _, err := slicesAPI.Create(ctx, s, metav1.CreateOptions{}); err != nil {
			t.Fatalf("create EndpointSlice %s: %v", s.Name, err)
		}
	}

	fe := proc.Start(t, filepath.Join(bin, "frontend"),
		[]string{"POD_NAME=frontend-0", "POD_NAMESPACE=" + ns, "DRAIN_DELAY=0s"},
		"--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0", "--admin-addr", "", "--downward-dir", "",
		"--kubeconfig", own.Kubeconfig, "--refresh-interval", "1s", "--backend-timeout", "2s",
		"--target", "sliced=kubernetes:///"+svcName+"."+ns+":grpc")
	t.Cleanup(func() { fe.Stop(t) })
	conn, err := grpc.NewClient(fe.Addrs["grpc"], grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	api := knowingnodev1.NewFanOutServiceClient(conn)

	want := map[string]wantEndpoint{
		be0.addr: {ready: true, serving: true, node: "node-0", zone: "zone-a", ref: "Pod/be-0", slices: "sliced-a,sliced-c"},
		be1.addr: {ready: true, serving: true, node: "node-1", zone: "zone-b", ref: "Pod/be-1", slices: "sliced-b"},
		be2.addr: {node: "node-2", zone: "zone-a", ref: "Pod/be-2", slices: "sliced-d"},
		be3.addr: {serving: true, terminating: true, node: "node-1", zone: "zone-b", ref: "Pod/be-3", slices: "sliced-e"},
		be6.addr: {ready: true, serving: true, node: "node-0", zone: "zone-a", ref: "Pod/be-6", slices: "sliced-v6"},
	}
	waitListed(t, api, want, 30*time.Second)
	st := targetState(t, api)
	if st.GetMode() != knowingnodev1.DiscoveryMode_DISCOVERY_MODE_KUBERNETES || st.GetLastError() != "" {
		t.Errorf("target state: mode %v, last error %q", st.GetMode(), st.GetLastError())
	}
	for _, e := range st.GetEndpoints() {
		if e.GetAddress() == be1.addr && !slices.Equal(e.GetSlice().GetHintZones(), []string{"zone-b"}) {
			t.Errorf("%s: hint zones %v, want [zone-b]", e.GetAddress(), e.GetSlice().GetHintZones())
		}
	}
	checkFanOut(t, api, map[string]string{be0.addr: "be-0", be1.addr: "be-1", be6.addr: "be-6"})

	// An update: be-2 turns ready. A delete: sliced-b goes, and with it
	// be-1. Then sliced-a goes: be-0 is left only in sliced-c, as not ready.
	upd := initial[3].DeepCopy()
	upd.Endpoints = []discoveryv1.Endpoint{sliceEP(be2, true, true, false)}
	if _, err := slicesAPI.Update(ctx, upd, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	want[be2.addr] = wantEndpoint{ready: true, serving: true, node: "node-2", zone: "zone-a", ref: "Pod/be-2", slices: "sliced-d"}
	updLag := waitListed(t, api, want, 10*time.Second)
	checkFanOut(t, api, map[string]string{be0.addr: "be-0", be1.addr: "be-1", be2.addr: "be-2", be6.addr: "be-6"})

	if err := slicesAPI.Delete(ctx, "sliced-b", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	delete(want, be1.addr)
	delLag := waitListed(t, api, want, 10*time.Second)
	if err := slicesAPI.Delete(ctx, "sliced-a", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	want[be0.addr] = wantEndpoint{terminating: true, node: "node-0", zone: "zone-a", ref: "Pod/be-0", slices: "sliced-c"}
	waitListed(t, api, want, 10*time.Second)
	checkFanOut(t, api, map[string]string{be2.addr: "be-2", be6.addr: "be-6"})

	// The API server goes away for 20 s: the set stays, the error shows,
	// fan-out goes on; after it is back the error clears and the watch
	// follows changes again.
	const outage = 20 * time.Second
	if err := own.StopAPIServer(); err != nil {
		t.Fatal(err)
	}
	stopped := time.Now()
	restarted := false
	t.Cleanup(func() {
		if !restarted {
			if err := own.StartAPIServer(context.Background()); err != nil {
				t.Errorf("restart kube-apiserver: %v", err)
			}
		}
	})
	var errShown time.Duration
	var lastErr string
	for time.Since(stopped) < outage {
		st := targetState(t, api)
		if st.GetLastError() != "" && errShown == 0 {
			errShown, lastErr = time.Since(stopped), st.GetLastError()
		}
		if diff := diffListed(st, want); diff != "" {
			t.Fatalf("%s into the outage the endpoints changed: %s", time.Since(stopped).Round(time.Millisecond), diff)
		}
		time.Sleep(250 * time.Millisecond)
	}
	if errShown == 0 {
		t.Fatalf("no discovery error shown during a %s API server outage", outage)
	}
	t.Logf("during the outage: %q", lastErr)
	checkFanOut(t, api, map[string]string{be2.addr: "be-2", be6.addr: "be-6"})
	if err := own.StartAPIServer(ctx); err != nil {
		t.Fatal(err)
	}
	restarted = true
	back := time.Now()
	var recovered time.Duration
	for {
		if targetState(t, api).GetLastError() == "" {
			recovered = time.Since(back)
			break
		}
		if time.Since(back) > 90*time.Second {
			t.Fatalf("discovery error still shown 90s after the API server came back: %q", targetState(t, api).GetLastError())
		}
		time.Sleep(100 * time.Millisecond)
	}
	cur, err := slicesAPI.Get(ctx, "sliced-e", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cur.Endpoints = []discoveryv1.Endpoint{sliceEP(be3, true, true, false)}
	if _, err := slicesAPI.Update(ctx, cur, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	want[be3.addr] = wantEndpoint{ready: true, serving: true, node: "node-1", zone: "zone-b", ref: "Pod/be-3", slices: "sliced-e"}
	// As above, with slack for the reflector's relist: the discovery
	// retries an unreachable API server every second itself, so client-go's
	// backoff never grows through the outage (it took 22-45 s when it did).
	afterLag := waitListed(t, api, want, 15*time.Second)
	checkFanOut(t, api, map[string]string{be2.addr: "be-2", be3.addr: "be-3", be6.addr: "be-6"})

	*line = fmt.Sprintf("own API-only control plane up in %s; 5 endpoints over 6 slices (IPv4+IPv6, one address in 2 slices) listed with conditions; fan-out reached exactly the ready ones; "+
		"update seen in %s, delete in %s; API server stopped %s: set kept, error shown after %s, cleared %s after restart, next update seen in %s",
		ownUp.Round(10*time.Millisecond), updLag.Round(time.Millisecond), delLag.Round(time.Millisecond), outage, errShown.Round(time.Millisecond),
		recovered.Round(100*time.Millisecond), afterLag.Round(time.Millisecond))
}

func ptrTo[T any](v T) *T { return &v }

// addLocalAddr puts ip on the loopback interface for the test: the API
// server refuses loopback addresses (127/8, ::1) in EndpointSlices, so the
// backends listen on addresses of a range that is never routed (198.18/15,
// RFC 2544; fd00::/8, unique local), which still carry traffic only inside
// this host. Needs CAP_NET_ADMIN, as the real-node suite does.
func addLocalAddr(t *testing.T, ip string) {
	t.Helper()
	prefix, extra := "/32", []string{}
	if strings.Contains(ip, ":") {
		prefix, extra = "/128", []string{"nodad"}
	}
	args := append([]string{"addr", "add", ip + prefix, "dev", "lo"}, extra...)
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil && (strings.Contains(string(out), "File exists") || strings.Contains(string(out), "already assigned")) {
		// There already: another run of this test beside this one, or one
		// that was killed before its clean-up. The ports are the kernel's
		// choice, so sharing the address is safe; removing it is not ours.
		t.Logf("%s is already on lo: used as it is, left there", ip)
		return
	}
	if err != nil {
		t.Fatalf("ip %s: %v: %s (EndpointSlices refuse loopback addresses, so the test adds its own to lo; it needs CAP_NET_ADMIN)",
			strings.Join(args, " "), err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "addr", "del", ip+prefix, "dev", "lo").CombinedOutput(); err != nil {
			t.Errorf("ip addr del %s dev lo: %v: %s", ip+prefix, err, out)
		}
	})
}

func portOf(t *testing.T, addr string) int32 {
	t.Helper()
	i := strings.LastIndex(addr, ":")
	var p int32
	if _, err := fmt.Sscan(addr[i+1:], &p); err != nil || i < 0 {
		t.Fatalf("no port in %q", addr)
	}
	return p
}

func sliceEP(b *sliceBackend, ready, serving, terminating bool) discoveryv1.Endpoint {
	return discoveryv1.Endpoint{
		Addresses:  []string{b.ip},
		Conditions: discoveryv1.EndpointConditions{Ready: &ready, Serving: &serving, Terminating: &terminating},
		NodeName:   ptrTo(b.node),
		Zone:       ptrTo(b.zone),
		TargetRef:  &corev1.ObjectReference{Kind: "Pod", Namespace: "e2e-slices", Name: b.pod},
	}
}

func withHints(e discoveryv1.Endpoint, zones ...string) discoveryv1.Endpoint {
	e.Hints = &discoveryv1.EndpointHints{}
	for _, z := range zones {
		e.Hints.ForZones = append(e.Hints.ForZones, discoveryv1.ForZone{Name: z})
	}
	return e
}

func targetState(t *testing.T, api knowingnodev1.FanOutServiceClient) *knowingnodev1.TargetState {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	resp, err := api.ListTargets(ctx, &knowingnodev1.ListTargetsRequest{})
	if err != nil {
		t.Fatalf("ListTargets: %v", err)
	}
	if len(resp.GetTargets()) != 1 {
		t.Fatalf("ListTargets: %d targets, want 1", len(resp.GetTargets()))
	}
	return resp.GetTargets()[0]
}

// diffListed says how st's endpoints differ from want; empty when equal.
func diffListed(st *knowingnodev1.TargetState, want map[string]wantEndpoint) string {
	got := map[string]wantEndpoint{}
	for _, e := range st.GetEndpoints() {
		s := e.GetSlice()
		got[e.GetAddress()] = wantEndpoint{
			ready: s.GetReady(), serving: s.GetServing(), terminating: s.GetTerminating(),
			node: s.GetNodeName(), zone: s.GetZone(), ref: s.GetTargetRef(), slices: strings.Join(s.GetSlices(), ","),
		}
	}
	if maps.Equal(got, want) {
		return ""
	}
	return fmt.Sprintf("got %+v, want %+v (last error %q)", got, want, st.GetLastError())
}

// waitListed waits until ListTargets shows exactly want and returns how long
// that took.
func waitListed(t *testing.T, api knowingnodev1.FanOutServiceClient, want map[string]wantEndpoint, bound time.Duration) time.Duration {
	t.Helper()
	t0 := time.Now()
	for {
		diff := diffListed(targetState(t, api), want)
		if diff == "" {
			return time.Since(t0)
		}
		if time.Since(t0) > bound {
			t.Fatalf("after %s ListTargets: %s", bound, diff)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// checkFanOut fans out (EACH) until every call reaches one of want (address
// → pod) and every one of want answers, for at most 2s, then once BALANCED
// (30 calls). Not at once: the frontend's Target publishes a new set (what
// ListTargets shows) a moment before it hands it to the connection pool
// fan-out calls (Target.Refresh: the state, then OnUpdate), so a fan-out in
// that window still calls the previous set; seen once in three runs, 11ms.
func checkFanOut(t *testing.T, api knowingnodev1.FanOutServiceClient, want map[string]string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	var got map[string]string
	var bad []string
	for t0 := time.Now(); ; {
		resp, err := api.FanOut(ctx, &knowingnodev1.FanOutRequest{Target: "sliced", Mode: knowingnodev1.FanOutMode_FAN_OUT_MODE_EACH})
		if err != nil {
			t.Fatalf("FanOut EACH: %v", err)
		}
		got, bad = map[string]string{}, nil
		for _, r := range resp.GetResults() {
			if r.GetCode() != "OK" {
				bad = append(bad, fmt.Sprintf("%s: %s %s", r.GetAddress(), r.GetCode(), r.GetMessage()))
			}
			got[r.GetAddress()] = r.GetIdentity().GetPodName()
		}
		if maps.Equal(got, want) && len(bad) == 0 {
			break
		}
		if time.Since(t0) > 2*time.Second {
			t.Fatalf("FanOut EACH reached %v (failed: %v), want exactly the ready endpoints %v", got, bad, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
	resp, err := api.FanOut(ctx, &knowingnodev1.FanOutRequest{Target: "sliced", Mode: knowingnodev1.FanOutMode_FAN_OUT_MODE_BALANCED, Count: 30})
	if err != nil {
		t.Fatalf("FanOut BALANCED: %v", err)
	}
	for _, r := range resp.GetResults() {
		if pod, ok := want[r.GetAddress()]; !ok || r.GetCode() != "OK" || r.GetIdentity().GetPodName() != pod {
			t.Errorf("FanOut BALANCED: %d calls to %s (%s %s, pod %q), want only the ready endpoints %v",
				r.GetCalls(), r.GetAddress(), r.GetCode(), r.GetMessage(), r.GetIdentity().GetPodName(), want)
		}
	}
}

// TestEndpointSlicesRBAC applies the endpointslices component (with the
// base namespace, restricted Pod Security enforced) and proves least
// privilege: its frontend's pods are admitted and mount a token, and its
// ServiceAccount may get, list and watch EndpointSlices in its namespace and
// nothing else, asked of the API server both through `kubectl auth can-i
// --as` and with a real token of that account.
func TestEndpointSlicesRBAC(t *testing.T) {
	line := report(t, "endpointslices rbac")
	ctx := t.Context()
	const ns, sa = "knowingnode", "frontend-endpointslices"
	dir := t.TempDir()
	// kustomize takes no absolute paths: reach deploy/ relative to dir.
	abs := func(p string) string {
		a, err := filepath.Abs(filepath.Join(deployDir, p))
		if err == nil {
			a, err = filepath.Rel(dir, a)
		}
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	kust := fmt.Sprintf("apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n  - %s\ncomponents:\n  - %s\n",
		abs("base"), abs("components/endpointslices"))
	if err := os.WriteFile(filepath.Join(dir, "kustomization.yaml"), []byte(kust), 0o644); err != nil {
		t.Fatal(err)
	}
	_, stderr, err := cl.Kubectl(ctx, "apply", "--server-side", "--field-manager=knowingnode-e2e", "--force-conflicts", "-k", dir)
	if err != nil {
		t.Fatal(err)
	}
	if s := strings.TrimSpace(stderr); s != "" {
		t.Errorf("apply warned (restricted Pod Security must hold): %s", s)
	}
	t.Cleanup(func() {
		_, _, _ = cl.Kubectl(context.Background(), "delete", "-n", ns, "--ignore-not-found", "--wait=false",
			"deployment/"+sa, "service/"+sa, "hpa/"+sa, "pdb/"+sa, "serviceaccount/"+sa,
			"role/endpointslices-reader", "rolebinding/"+sa)
	})
	if _, _, err := cl.Kubectl(ctx, "rollout", "status", "-n", ns, "deployment/"+sa, "--timeout=120s"); err != nil {
		t.Fatalf("the frontend's pods were not admitted and ready under restricted Pod Security: %v", err)
	}
	pods, err := cl.Client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "controlling=endpointslices"})
	if err != nil || len(pods.Items) == 0 {
		t.Fatalf("frontend-endpointslices pods: %v (%d)", err, len(pods.Items))
	}
	for _, p := range pods.Items {
		token := slices.ContainsFunc(p.Spec.Volumes, func(v corev1.Volume) bool {
			return v.Projected != nil && slices.ContainsFunc(v.Projected.Sources, func(s corev1.VolumeProjection) bool { return s.ServiceAccountToken != nil })
		})
		if p.Spec.ServiceAccountName != sa || !token {
			t.Errorf("pod %s: service account %q, token volume %v; want %s with a token", p.Name, p.Spec.ServiceAccountName, token, sa)
		}
	}

	as := "--as=system:serviceaccount:" + ns + ":" + sa
	cases := []struct {
		args  []string
		allow bool
	}{
		{[]string{"get", "endpointslices.discovery.k8s.io", "-n", ns}, true},
		{[]string{"list", "endpointslices.discovery.k8s.io", "-n", ns}, true},
		{[]string{"watch", "endpointslices.discovery.k8s.io", "-n", ns}, true},
		{[]string{"create", "endpointslices.discovery.k8s.io", "-n", ns}, false},
		{[]string{"update", "endpointslices.discovery.k8s.io", "-n", ns}, false},
		{[]string{"patch", "endpointslices.discovery.k8s.io", "-n", ns}, false},
		{[]string{"delete", "endpointslices.discovery.k8s.io", "-n", ns}, false},
		{[]string{"deletecollection", "endpointslices.discovery.k8s.io", "-n", ns}, false},
		{[]string{"list", "endpointslices.discovery.k8s.io", "-n", "default"}, false},
		{[]string{"list", "endpointslices.discovery.k8s.io", "--all-namespaces"}, false},
		{[]string{"list", "endpoints", "-n", ns}, false},
		{[]string{"get", "services", "-n", ns}, false},
		{[]string{"list", "pods", "-n", ns}, false},
		{[]string{"create", "pods", "--subresource=exec", "-n", ns}, false},
		{[]string{"get", "secrets", "-n", ns}, false},
		{[]string{"list", "configmaps", "-n", ns}, false},
		{[]string{"create", "serviceaccounts", "--subresource=token", "-n", ns}, false},
		{[]string{"list", "nodes"}, false},
		{[]string{"*", "*", "-n", ns}, false},
	}
	denied := 0
	for _, c := range cases {
		out, _, err := cl.Kubectl(ctx, append(append([]string{"auth", "can-i"}, c.args...), as)...)
		got := strings.TrimSpace(out) == "yes" && err == nil
		if ans := strings.TrimSpace(out); ans != "yes" && ans != "no" {
			t.Errorf("can-i %v: %q, %v", c.args, out, err)
			continue
		}
		if got != c.allow {
			t.Errorf("can-i %s %v: %v, want %v", as, c.args, got, c.allow)
		}
		if !got {
			denied++
		}
	}

	// The same with a real token of the account.
	tok, _, err := cl.Kubectl(ctx, "create", "token", sa, "-n", ns, "--duration=10m")
	if err != nil {
		t.Fatal(err)
	}
	cfg := rest.AnonymousClientConfig(cl.REST)
	cfg.BearerToken = strings.TrimSpace(tok)
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := client.DiscoveryV1().EndpointSlices(ns).List(ctx, metav1.ListOptions{}); err != nil {
		t.Errorf("list EndpointSlices in %s with the account's token: %v", ns, err)
	}
	if _, err := client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{}); !apierrors.IsForbidden(err) {
		t.Errorf("list pods with the account's token: %v, want Forbidden", err)
	}
	if _, err := client.DiscoveryV1().EndpointSlices("default").List(ctx, metav1.ListOptions{}); !apierrors.IsForbidden(err) {
		t.Errorf("list EndpointSlices in default with the account's token: %v, want Forbidden", err)
	}
	*line = fmt.Sprintf("frontend-endpointslices admitted under restricted PSS with a token; its SA may get/list/watch endpointslices in %s, denied %d of %d other verb/resource/namespace checks; a real token agrees", ns, denied, len(cases)-3)
}
