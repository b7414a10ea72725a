package node

import (
	"context"
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	knowingnodev1 "github.com/knowingnode/knowingnode/gen/knowingnode/v1"
	"github.com/knowingnode/knowingnode/harness/apijson"
	"github.com/knowingnode/knowingnode/harness/poll"
	"github.com/knowingnode/knowingnode/harness/proc"
	"google.golang.org/protobuf/proto"
)

const (
	deploySel = "component=backend,controlling=deployment"
	dsSel     = "component=backend,controlling=daemonset"
	stsSel    = "component=backend,controlling=statefulset"
)

func frontendBase(t *testing.T, topology string) string {
	t.Helper()
	ip, err := serviceIP(namespace, "frontend-"+topology)
	if err != nil || ip == "" {
		t.Fatalf("frontend-%s Service: %q %v", topology, ip, err)
	}
	return "http://" + ip + ":8080"
}

// eachMatchesAPI is scenario 1 for a headless topology: FanOut EACH through
// the frontend's ClusterIP (from the node) answers from exactly the backend
// pods the API lists as ready, each with its own identity.
func eachMatchesAPI(t *testing.T, base, ns, sel string) fanoutResponse {
	t.Helper()
	var last fanoutResponse
	err := poll.Until(context.Background(), 30*time.Second, 500*time.Millisecond, "EACH to answer from the ready pods", func(context.Context) error {
		want, err := readyPods(ns, sel)
		if err != nil {
			return err
		}
		if last, err = fanout(fresh, base, "mode=EACH"); err != nil {
			return err
		}
		return exactly(last, want)
	})
	if err != nil {
		t.Fatalf("FanOut EACH via %s: %v", base, err)
	}
	return last
}

// The NodePorts scenario 1 adds for the headless topologies' frontends.
var dsNodePort, stsNodePort string

// nodePortOf publishes a frontend Deployment that the overlays give only a
// ClusterIP on a NodePort, as a user would (`kubectl expose`), and returns
// its base URL on the node's IP. The Service is the test's, not a manifest.
func nodePortOf(t *testing.T, topology string) string {
	t.Helper()
	name := "frontend-" + topology + "-e2e-nodeport"
	if _, err := kubectl("-n", namespace, "expose", "deployment/frontend-"+topology, "--name="+name,
		"--type=NodePort", "--port=8080", "--target-port=8080"); err != nil {
		t.Fatal(err)
	}
	out, err := kubectl("-n", namespace, "get", "service", name, "-o", "jsonpath={.spec.ports[0].nodePort}")
	if err != nil || strings.TrimSpace(out) == "" {
		t.Fatalf("nodePort of %s: %q %v", name, out, err)
	}
	return "http://" + nodeIP + ":" + strings.TrimSpace(out)
}

// ---- Deployment + ClusterIP (and the nodeport overlay) ---------------------

func deploymentTopology(t *testing.T) {
	scenario(t, "1 deployment: EACH = API pods", func(t *testing.T) string {
		// A ClusterIP target is ONE address (the VIP): EACH makes one call,
		// answered by whichever pod kube-proxy chose for that connection. It
		// must be a ready pod of the API, with its own identity; through the
		// frontend's ClusterIP from the node and through its NodePort.
		var seen []string
		for _, base := range []string{frontendBase(t, "deployment"), "http://" + nodeIP + ":30080"} {
			err := poll.Until(context.Background(), 30*time.Second, 500*time.Millisecond, "EACH to answer from the ready pods", func(context.Context) error {
				want, err := readyPods(namespace, deploySel)
				if err != nil {
					return err
				}
				r, err := fanout(fresh, base, "mode=EACH")
				if err != nil {
					return err
				}
				if len(r.Results) != 1 || r.Results[0].Code != "OK" {
					return fmt.Errorf("want one OK result for the VIP, got %+v", r.Results)
				}
				id := r.Results[0].Identity
				i := slices.IndexFunc(want, func(p pod) bool { return p.Metadata.Name == id.PodName })
				if i < 0 {
					return fmt.Errorf("answered by %s, not a ready pod of %v", id.PodName, names(want))
				}
				seen = append(seen, id.PodName+"@"+base)
				return checkIdentity(id, want[i])
			})
			if err != nil {
				t.Fatalf("via %s: %v", base, err)
			}
		}
		return "ClusterIP VIP answered by an API pod, identity exact, all Downward API: " + strings.Join(seen, ", ")
	})

	scenario(t, "6 deployment: grpcurl NodePorts", func(t *testing.T) string {
		want, err := readyPods(namespace, deploySel)
		if err != nil {
			t.Fatal(err)
		}
		var id knowingnodev1.GetIdentityResponse
		addr := nodeIP + ":30091"
		if err := grpcurlJSON(addr, "knowingnode.v1.IdentityService/GetIdentity", "{}", &id); err != nil {
			t.Fatal(err)
		}
		if !slices.Contains(names(want), id.GetIdentity().GetPodName()) {
			t.Fatalf("backend NodePort %s answered as %q, not one of %v", addr, id.GetIdentity().GetPodName(), names(want))
		}
		var fo knowingnodev1.FanOutResponse
		faddr := nodeIP + ":30090"
		if err := grpcurlJSON(faddr, "knowingnode.v1.FanOutService/FanOut", `{"mode":"FAN_OUT_MODE_EACH"}`, &fo); err != nil {
			t.Fatal(err)
		}
		if fo.GetSummary().GetOk() != 1 || !strings.HasPrefix(fo.GetFrontend().GetPodName(), "frontend-deployment-") {
			t.Fatalf("frontend NodePort %s: FanOut answered %+v", faddr, fo.Summary)
		}
		return fmt.Sprintf("backend :30091 -> %s; frontend :30090 FanOut by %s ok=%d", id.GetIdentity().GetPodName(), fo.GetFrontend().GetPodName(), fo.GetSummary().GetOk())
	})

	scenario(t, "7 deployment: browser via NodePort", func(t *testing.T) string {
		return browserShows(t, "http://"+nodeIP+":30080/", namespace, deploySel, true)
	})

	scenario(t, "5 deployment: ClusterIP pinning", func(t *testing.T) string {
		// BALANCED through a ClusterIP target: one HTTP/2 connection to the
		// VIP, so every call of a batch lands on ONE pod, until the backend's
		// MaxConnectionAge (30 s + 10 s grace) closes it and the reconnect
		// lands wherever kube-proxy sends it. Both frontend pods are watched
		// directly (their pod IPs), each with its own connection.
		fes, err := readyPods(namespace, "component=frontend,controlling=deployment")
		if err != nil || len(fes) == 0 {
			t.Fatalf("frontend pods: %v %v", names(fes), err)
		}
		type watch struct {
			base     string
			pinned   []string // the pod of each single-pod batch, in order
			mixed    int      // batches spread over more than one pod
			failed   int      // batches with failed calls
			changeAt time.Duration
		}
		ws := make([]*watch, len(fes))
		for i, p := range fes {
			ws[i] = &watch{base: "http://" + p.Status.PodIP + ":8080"}
		}
		start := time.Now()
		const limit = 110 * time.Second
		changed := func() bool {
			for _, w := range ws {
				if w.changeAt > 0 {
					return true
				}
			}
			return false
		}
		for !changed() && time.Since(start) < limit {
			for _, w := range ws {
				r, err := fanout(fresh, w.base, "mode=BALANCED&count=20")
				if err != nil {
					t.Fatal(err)
				}
				if r.GetSummary().GetFailed() != 0 {
					var why []string
					for _, x := range r.Results {
						if x.Code != "OK" {
							why = append(why, fmt.Sprintf("%d× %s %s", x.Calls, x.Code, x.Message))
						}
					}
					// Reported, not failed: a ClusterIP client has one
					// connection, and while it reconnects its calls can fail.
					t.Logf("%s %s: BALANCED over the ClusterIP failed %d of %d calls: %s", time.Now().Format("15:04:05.000"), w.base, r.GetSummary().GetFailed(), r.GetSummary().GetTotal(), strings.Join(why, "; "))
					w.failed++
				}
				if len(r.GetSummary().GetByPod()) == 0 {
					continue
				}
				if len(r.GetSummary().GetByPod()) != 1 {
					w.mixed++
					continue
				}
				for p := range r.GetSummary().GetByPod() {
					if len(w.pinned) > 0 && w.pinned[len(w.pinned)-1] != p && w.changeAt == 0 {
						w.changeAt = time.Since(start)
					}
					w.pinned = append(w.pinned, p)
				}
			}
			time.Sleep(2 * time.Second)
		}
		var detail []string
		for _, w := range ws {
			batches := len(w.pinned) + w.mixed // batches with at least one OK call
			// A batch may straddle the reconnect: at most one per change.
			if w.mixed > 1 || (w.mixed == 1 && w.changeAt == 0 && batches < 3) {
				t.Errorf("%s: %d of %d batches spread over several pods: the ClusterIP connection is not pinned", w.base, w.mixed, batches)
			}
			change := "unchanged"
			if w.changeAt > 0 {
				change = fmt.Sprintf("changed after %.0fs", w.changeAt.Seconds())
			}
			failed := ""
			if w.failed > 0 {
				failed = fmt.Sprintf(" (%d batches with failed calls while reconnecting)", w.failed)
			}
			detail = append(detail, fmt.Sprintf("%d batches pinned: %s, %s%s", batches, compact(w.pinned), change, failed))
		}
		if !changed() {
			t.Errorf("no frontend's pinned backend changed within %v: MaxConnectionAge did not rebalance", limit)
		}
		return strings.Join(detail, "; ")
	})

	scenario(t, "3 deployment: rollout restart", func(t *testing.T) string {
		return rolloutUnderLoad(t, frontendBase(t, "deployment"), "deployment/backend", deploySel, true)
	})
}

// compact turns [a a a b b] into "a×3→b×2".
func compact(s []string) string {
	var out []string
	for i := 0; i < len(s); {
		j := i
		for j < len(s) && s[j] == s[i] {
			j++
		}
		out = append(out, fmt.Sprintf("%s×%d", s[i][strings.LastIndex(s[i], "-")+1:], j-i))
		i = j
	}
	return strings.Join(out, "→")
}

// ---- DaemonSet + hostPort + headless ----------------------------------------

func daemonSetTopology(t *testing.T) {
	scenario(t, "1 daemonset: EACH = API pods", func(t *testing.T) string {
		r := eachMatchesAPI(t, frontendBase(t, "daemonset"), dsNS, dsSel)
		if len(r.GetSummary().GetByNode()) != numNodes {
			t.Fatalf("one DaemonSet pod per node expected on %d nodes, by node: %v", numNodes, r.GetSummary().GetByNode())
		}
		np := nodePortOf(t, "daemonset")
		eachMatchesAPI(t, np, dsNS, dsSel)
		dsNodePort = np
		return fmt.Sprintf("%d pods = API, one per node %v; via ClusterIP and %s", len(r.Results), keys(r.GetSummary().GetByNode()), np)
	})
	scenario(t, "6 daemonset: hostPort on node IP", func(t *testing.T) string {
		// Both nodes share the host's IP, so the hostPort answers for one of
		// them: whichever pod's portmap rule came first.
		want, err := readyPods(dsNS, dsSel)
		if err != nil {
			t.Fatal(err)
		}
		var id knowingnodev1.GetIdentityResponse
		addr := nodeIP + ":9090"
		if err := grpcurlJSON(addr, "knowingnode.v1.IdentityService/GetIdentity", "{}", &id); err != nil {
			t.Fatal(err)
		}
		i := slices.IndexFunc(want, func(p pod) bool { return p.Metadata.Name == id.GetIdentity().GetPodName() })
		if i < 0 {
			t.Fatalf("hostPort %s answered as %q, not a DaemonSet pod %v", addr, id.GetIdentity().GetPodName(), names(want))
		}
		if err := checkIdentity(id.GetIdentity(), want[i]); err != nil {
			t.Fatal(err)
		}
		return fmt.Sprintf("%s (grpcurl) answered by %s on %s, nodeIp %s", addr, id.GetIdentity().GetPodName(), id.GetIdentity().GetNodeName(), id.GetIdentity().GetNodeIp())
	})
	scenario(t, "zone daemonset: a zone per node", func(t *testing.T) string {
		// Each node carries topology.kubernetes.io/zone (cluster/up.sh); the
		// PodTopologyLabels admission copies it to the pods bound there, and
		// the backend reads it through the Downward API labels file.
		out, err := kubectl("get", "nodes", "-o", `jsonpath={range .items[*]}{.metadata.name}={.metadata.labels.topology\.kubernetes\.io/zone}/{.metadata.labels.topology\.kubernetes\.io/region}{"\n"}{end}`)
		if err != nil {
			t.Fatal(err)
		}
		zoneOf, regionOf := map[string]string{}, map[string]string{}
		for _, l := range strings.Fields(out) {
			node, zr, _ := strings.Cut(l, "=")
			zoneOf[node], regionOf[node], _ = strings.Cut(zr, "/")
		}
		r := eachMatchesAPI(t, frontendBase(t, "daemonset"), dsNS, dsSel)
		want := map[string]int32{}
		for _, x := range r.Results {
			id := x.GetIdentity()
			z, reg := zoneOf[id.GetNodeName()], regionOf[id.GetNodeName()]
			if z == "" || id.GetZone() != z || id.GetRegion() != reg {
				t.Errorf("%s on %s reports zone %q region %q; the node has %q %q", id.GetPodName(), id.GetNodeName(), id.GetZone(), id.GetRegion(), z, reg)
			}
			if src := id.GetSources()["zone"]; src != knowingnodev1.Source_SOURCE_DOWNWARD_API {
				t.Errorf("%s: zone from %v, want the Downward API", id.GetPodName(), src)
			}
			want[z]++
		}
		if got := r.GetSummary().GetByZone(); !maps.Equal(got, want) || len(got) != numNodes {
			t.Errorf("summary by zone %v, want %v (one pod per node, one zone per node)", got, want)
		}
		return fmt.Sprintf("by zone %v, region %v", r.GetSummary().GetByZone(), regionOf)
	})
	scenario(t, "7 daemonset: browser via NodePort", func(t *testing.T) string {
		if dsNodePort == "" {
			t.Skip("no NodePort: scenario 1 failed")
		}
		return browserShows(t, dsNodePort+"/", dsNS, dsSel, false)
	})
}

func keys[V any](m map[string]V) []string { return slices.Sorted(maps.Keys(m)) }

// ---- StatefulSet + headless -------------------------------------------------

func statefulSetTopology(t *testing.T) {
	var base string
	scenario(t, "1 statefulset: EACH = API pods", func(t *testing.T) string {
		base = frontendBase(t, "statefulset")
		r := eachMatchesAPI(t, base, namespace, stsSel)
		np := nodePortOf(t, "statefulset")
		eachMatchesAPI(t, np, namespace, stsSel)
		stsNodePort = np
		return fmt.Sprintf("%d pods = API (names, IPs, nodes %v), all Downward API; via ClusterIP and %s", len(r.Results), r.GetSummary().GetByNode(), np)
	})
	if base == "" {
		return
	}

	scenario(t, "4 statefulset: per-pod names", func(t *testing.T) string {
		// The frontend pod resolves backend-sts-<i>.backend-sts.knowingnode.svc
		// through its own /etc/resolv.conf (the kubelet's clusterDNS, CoreDNS):
		// the names resolve inside a pod, and the pods answer in ordinal order.
		r, err := fanout(fresh, base, "mode=EACH")
		if err != nil {
			t.Fatal(err)
		}
		var order []string
		for i, x := range r.Results {
			want := fmt.Sprintf("backend-sts-%d", i)
			if x.DnsName != want+".backend-sts.knowingnode.svc.cluster.local" || x.Identity == nil || x.GetIdentity().GetPodName() != want {
				t.Fatalf("result %d: dnsName %q answered by %+v, want %s in ordinal order", i, x.DnsName, x.Identity, want)
			}
			if !strings.HasPrefix(x.Address, x.GetIdentity().GetPodIp()+":") {
				t.Fatalf("%s resolved to %s but the pod's IP is %s", x.DnsName, x.Address, x.GetIdentity().GetPodIp())
			}
			order = append(order, x.GetIdentity().GetPodName())
		}
		var targets knowingnodev1.ListTargetsResponse
		if err := apijson.Get(t.Context(), fresh, base+"/v1/targets", &targets); err != nil {
			t.Fatal(err)
		}
		if len(targets.Targets) != 1 || len(targets.Targets[0].Endpoints) != len(r.Results) {
			t.Fatalf("targets: %v", &targets)
		}
		return fmt.Sprintf("resolved in the frontend pod and answered in order: %s", strings.Join(order, ", "))
	})

	scenario(t, "5 statefulset: BALANCED headless spread", func(t *testing.T) string {
		const count = 300
		r, err := fanout(fresh, base, fmt.Sprintf("mode=BALANCED&count=%d", count))
		if err != nil {
			t.Fatal(err)
		}
		want, err := readyPods(namespace, stsSel)
		if err != nil {
			t.Fatal(err)
		}
		if r.GetSummary().GetFailed() != 0 || r.GetSummary().GetOk() != count {
			t.Fatalf("BALANCED: %d ok, %d failed of %d", r.GetSummary().GetOk(), r.GetSummary().GetFailed(), count)
		}
		even := float64(count) / float64(len(want))
		for _, p := range want {
			n := r.GetSummary().GetByPod()[p.Metadata.Name]
			if math.Abs(float64(n)-even) > 0.2*even {
				t.Errorf("%s got %d of %d calls; even is %.0f±20%%", p.Metadata.Name, n, count, even)
			}
		}
		return fmt.Sprintf("%d calls over %d pods: %v (even %.0f ±20%%)", count, len(want), r.GetSummary().GetByPod(), even)
	})

	scenario(t, "7 statefulset: browser via NodePort", func(t *testing.T) string {
		if stsNodePort == "" {
			t.Skip("no NodePort: scenario 1 failed")
		}
		return browserShows(t, stsNodePort+"/", namespace, stsSel, false)
	})

	scenario(t, "2 statefulset: scale 3→5→2→3", func(t *testing.T) string {
		var detail []string
		// Back to 3 at the end: the rollout that follows starts from the
		// manifest's replica count.
		for _, n := range []int{5, 2, 3} {
			lag, checks, err := scaleAndFollow(t, base, n)
			if err != nil {
				t.Fatalf("scale to %d: %v", n, err)
			}
			limit := refresh + dnsTTL + followSlak
			if lag > limit {
				t.Errorf("scale to %d: fan-out followed %.1fs after the API, limit %v (refresh %v + TTL %v + %v)", n, lag.Seconds(), limit, refresh, dnsTTL, followSlak)
			}
			detail = append(detail, fmt.Sprintf("→%d followed in %.1fs (%d fan-outs, none from a gone pod)", n, lag.Seconds(), checks))
		}
		return strings.Join(detail, "; ") + fmt.Sprintf("; limit %v", refresh+dnsTTL+followSlak)
	})

	scenario(t, "3 statefulset: rollout restart", func(t *testing.T) string {
		return rolloutUnderLoad(t, base, "statefulset/backend-sts", stsSel, false)
	})
}

// scaleAndFollow scales the StatefulSet to n and measures how long after the
// API shows exactly the n ready pods the frontend's EACH answers from exactly
// them; every fan-out along the way must come only from pods that exist.
func scaleAndFollow(t *testing.T, base string, n int) (lag time.Duration, checks int, err error) {
	if _, err := kubectl("-n", namespace, "scale", "statefulset/backend-sts", fmt.Sprintf("--replicas=%d", n)); err != nil {
		return 0, 0, err
	}
	var apiAt, feAt time.Time
	deadline := time.Now().Add(waitLimit)
	for time.Now().Before(deadline) {
		r, ferr := fanout(fresh, base, "mode=EACH")
		all, perr := pods(namespace, stsSel)
		if perr != nil {
			return 0, checks, perr
		}
		if ferr != nil {
			return 0, checks, fmt.Errorf("fan-out failed as a whole: %v", ferr)
		}
		checks++
		exist := map[string]bool{}
		var ready []pod
		for _, p := range all {
			exist[p.Metadata.Name+"/"+p.Status.PodIP] = true
			if p.ready() && p.Metadata.DeletionTimestamp == nil {
				ready = append(ready, p)
			}
		}
		for _, x := range r.Results {
			if x.Code == "OK" && !exist[x.GetIdentity().GetPodName()+"/"+x.GetIdentity().GetPodIp()] {
				t.Errorf("scale to %d: fan-out answered by %s (%s), a pod the API no longer has", n, x.GetIdentity().GetPodName(), x.GetIdentity().GetPodIp())
			}
			if x.Code != "OK" {
				t.Logf("scale to %d: %s (%s) %s %s (pod going away)", n, x.Address, x.DnsName, x.Code, x.Message)
			}
		}
		// The API's moment: exactly n pods ready and not being deleted (a
		// scale-down marks the surplus for deletion at once).
		if len(ready) == n && apiAt.IsZero() {
			apiAt = time.Now()
		}
		if len(ready) == n && exactly(r, ready) == nil {
			feAt = r.at
			// The pods that left must be gone before the next scenario, so
			// that it starts from n pods only.
			gone := poll.Until(context.Background(), waitLimit, 300*time.Millisecond, "the pods that left to be gone", func(context.Context) error {
				all, err := pods(namespace, stsSel)
				if err == nil && len(all) != n {
					err = fmt.Errorf("%d pods still exist", len(all))
				}
				return err
			})
			return max(0, feAt.Sub(apiAt)), checks, gone
		}
		time.Sleep(300 * time.Millisecond)
	}
	return 0, checks, fmt.Errorf("the fan-out never matched the %d ready pods", n)
}

// rolloutUnderLoad is scenario 3: `kubectl rollout restart` of a backend
// workload while EACH and BALANCED fan-outs run without pause. Through a
// headless target BALANCED must not lose a call; through a ClusterIP (vip)
// target the losses are counted and reported.
func rolloutUnderLoad(t *testing.T, base, workload, sel string, vip bool) string {
	old, err := pods(namespace, sel)
	if err != nil {
		t.Fatal(err)
	}
	oldUID := map[string]bool{}
	oldIP := map[string]bool{}
	// Follow each old pod's log to its end: the SIGTERM drain must show.
	logs := make([]*podLog, len(old))
	for i, p := range old {
		oldUID[p.Metadata.UID] = true
		oldIP[p.Status.PodIP] = true
		logs[i] = followLog(p.Metadata.Name)
	}

	load := startLoad(t, base, vip)
	start := time.Now()
	if _, err := kubectl("-n", namespace, "rollout", "restart", workload); err != nil {
		load.stop()
		t.Fatal(err)
	}
	_, rerr := kubectl("-n", namespace, "rollout", "status", workload, "--timeout=180s")
	rolled := time.Since(start)
	// Load goes on until the frontend sees only new pods.
	perr := poll.Until(context.Background(), 30*time.Second, 300*time.Millisecond, "the frontend to see only new pods", func(context.Context) error {
		want, err := readyPods(namespace, sel)
		if err != nil {
			return err
		}
		r, err := fanout(fresh, base, "mode=EACH")
		if err != nil {
			return err
		}
		if vip {
			if len(r.Results) != 1 || r.Results[0].Identity == nil || !slices.Contains(names(want), r.Results[0].GetIdentity().GetPodName()) {
				return fmt.Errorf("the VIP answered %v; the new pods are %v", resultPods(r), names(want))
			}
			return nil
		}
		return exactly(r, want)
	})
	st := load.stop()
	if rerr != nil {
		t.Fatal(rerr)
	}
	if perr != nil {
		t.Fatalf("after the rollout: %v", perr)
	}

	// Readiness: no new pod answered before the API marked it Ready (the
	// condition's time has 1 s resolution and is truncated, so this check
	// can only err on the lenient side by under a second).
	now, err := pods(namespace, sel)
	if err != nil {
		t.Fatal(err)
	}
	readyAt := map[string]time.Time{}
	for _, p := range now {
		if oldUID[p.Metadata.UID] && p.Metadata.DeletionTimestamp == nil {
			t.Errorf("%s (uid %s) was not replaced", p.Metadata.Name, p.Metadata.UID)
		}
		readyAt[p.Status.PodIP] = p.readySince()
	}
	early := 0
	for _, s := range st.samples {
		for _, ip := range s.ips {
			if ra, ok := readyAt[ip]; ok && !oldIP[ip] && s.at.Before(ra) {
				early++
				t.Errorf("new pod %s answered at %s, before it was Ready at %s", ip, s.at.Format(time.TimeOnly), ra.Format(time.TimeOnly))
			}
		}
	}
	// Draining: every old pod saw SIGTERM, went NOT_SERVING and stopped.
	drained := 0
	for _, l := range logs {
		// SIGTERM → NOT_SERVING for the drain delay → GracefulStop, which
		// ends only when the in-flight calls have: "shutdown: done", with no
		// "cutting them" warning of the shutdown timeout.
		out := l.wait(40 * time.Second)
		i, j := strings.Index(out, "NOT_SERVING, draining"), strings.Index(out, "shutdown: done")
		if i >= 0 && j > i && !strings.Contains(out, "cutting them") {
			drained++
		} else {
			t.Errorf("old pod %s: no clean drain after SIGTERM in its log:\n%s", l.name, tail(out, 12))
		}
	}
	if st.balFailed != 0 && !vip {
		t.Errorf("BALANCED through the headless target: %d of %d calls failed", st.balFailed, st.balTotal)
	}
	return fmt.Sprintf("%d pods rolled in %.0fs; %s; %d/%d old pods drained (SIGTERM→NOT_SERVING→in-flight done); %d answers before Ready",
		len(old), rolled.Seconds(), st, drained, len(old), early)
}

func tail(s string, n int) string {
	l := strings.Split(strings.TrimSpace(s), "\n")
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, "\n")
}

// podLog follows one pod's log with `kubectl logs -f` until the container ends.
type podLog struct {
	name string
	p    *proc.Process
}

func followLog(name string) *podLog {
	p, err := proc.Launch("kubectl logs "+name, kubectlP, proc.Options{Inherit: true},
		"--kubeconfig", kubecfg, "-n", namespace, "logs", "-f", name)
	if err != nil {
		return &podLog{name: name}
	}
	return &podLog{name: name, p: p}
}

// wait returns the log once the container ended, or what there is after limit.
func (l *podLog) wait(limit time.Duration) string {
	if l.p == nil {
		return ""
	}
	select {
	case <-l.p.Exited:
	case <-time.After(limit):
		_ = l.p.Kill()
	}
	return l.p.Output()
}

// ---- gRPC and HTTP helpers --------------------------------------------------

// grpcurlJSON calls method on addr with grpcurl (server reflection) and
// decodes its JSON answer.
func grpcurlJSON(addr, method, data string, v proto.Message) error {
	out, err := proc.Run("", nil, 20*time.Second, grpcurlP, "-plaintext", "-d", data, addr, method)
	if err != nil {
		return err
	}
	if err := apijson.Decode([]byte(out), v); err != nil {
		return fmt.Errorf("grpcurl %s %s: %w", addr, method, err)
	}
	return nil
}
