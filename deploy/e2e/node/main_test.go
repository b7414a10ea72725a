// Package node is the end-to-end test on REAL Kubernetes nodes: a two-node
// cluster on this machine (cluster/up.sh: etcd, kube-apiserver,
// kube-controller-manager, kube-scheduler, a containerd + kubelet per node,
// kube-proxy, CoreDNS), the project's image built without Docker
// (deploy/image) and a pause image of our own imported into both runtimes, the
// real deploy/overlays applied with `kubectl apply -k` (only the image tag
// changed), and scenarios that talk to the pods the way users do: through the
// frontend's Services (ClusterIP from the node, NodePort), gRPC (grpcurl) and
// the browser. Needs root; run it with `make e2e-node`.
package node

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/knowingnode/knowingnode/deploy/e2e/node/internal/pauseimage"
	knowingnodev1 "github.com/knowingnode/knowingnode/gen/knowingnode/v1"
	"github.com/knowingnode/knowingnode/harness/apijson"
	"github.com/knowingnode/knowingnode/harness/poll"
	"github.com/knowingnode/knowingnode/harness/proc"
)

const (
	imageTag   = "knowingnode:e2e"
	pauseTag   = "knowingnode.local/pause:e2e"
	namespace  = "knowingnode"
	dsNS       = "knowingnode-node"
	numNodes   = 2
	waitLimit  = 120 * time.Second
	refresh    = 5 * time.Second // the frontend's REFRESH_INTERVAL in deploy/frontend
	dnsTTL     = 5 * time.Second // CoreDNS kubernetes plugin ttl in cluster/up.sh
	followSlak = 4 * time.Second // readiness probe period (2 s) + the EndpointSlice and CoreDNS watch
)

// The cluster under test, set up by TestMain.
var (
	repo      string // repository root
	clusterUp bool
	state     = envOr("KNE2E_STATE", "/tmp/kne2e")
	work      string // temporary build outputs
	binDir    string // control-plane binaries
	nodeBin   string // kubelet, kube-proxy, crictl
	kubectlP  string
	grpcurlP  string
	nodeIP    string
	kubecfg   string
)

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s e2e-node: %s\n", time.Now().UTC().Format("15:04:05"), fmt.Sprintf(format, args...))
}

// summaries: one line per scenario, printed at the end.
var (
	sumMu     sync.Mutex
	summaries []string
)

func summarize(t *testing.T, scenario string, start time.Time, detail string, args ...any) {
	status := "PASS"
	if t.Failed() {
		status = "FAIL"
	} else if t.Skipped() {
		status = "SKIP"
	}
	line := fmt.Sprintf("%-4s %-42s %6.1fs  %s", status, scenario, time.Since(start).Seconds(), fmt.Sprintf(detail, args...))
	sumMu.Lock()
	summaries = append(summaries, line)
	sumMu.Unlock()
}

// scenario runs a named scenario and records its one-line summary.
func scenario(t *testing.T, name string, f func(t *testing.T) string) {
	t.Run(name, func(t *testing.T) {
		requireCluster(t)
		start := time.Now()
		detail := ""
		defer func() { summarize(t, name, start, "%s", detail) }()
		detail = f(t)
	})
}

func requireCluster(t *testing.T) {
	t.Helper()
	if !clusterUp {
		t.Skip("no cluster (set KNOWINGNODE_NODE_E2E=1 and run as root: make e2e-node)")
	}
}

func TestMain(m *testing.M) {
	if os.Getenv("KNOWINGNODE_NODE_E2E") != "1" {
		fmt.Fprintln(os.Stderr, "e2e-node: KNOWINGNODE_NODE_E2E is not 1; the real-node scenarios are skipped (run make e2e-node)")
		os.Exit(m.Run())
	}
	os.Exit(runMain(m))
}

func runMain(m *testing.M) (code int) {
	total := time.Now()
	var err error
	if repo, err = filepath.Abs("../../.."); err != nil {
		logf("%v", err)
		return 1
	}
	if os.Geteuid() != 0 {
		logf("must run as root (it starts containerd, kubelets, kube-proxy)")
		return 1
	}

	// One real-node e2e at a time on a machine: they share STATE, the bridge
	// names and the host ports. While we hold the lock, a cluster at STATE is
	// a leftover of a killed run, safe to tear down.
	lock, err := os.OpenFile(state+".lock", os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		logf("%v", err)
		return 1
	}
	defer lock.Close()
	if syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) != nil {
		logf("another e2e-node run holds %s; waiting for it", lock.Name())
		if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
			logf("lock %s: %v", lock.Name(), err)
			return 1
		}
	}

	// Build outputs and browser profiles: a fixed place, so that a killed
	// run's are removed by the next one (or by make's clean-up).
	work = state + "-work"
	os.RemoveAll(work)
	if err := os.MkdirAll(work, 0o755); err != nil {
		logf("%v", err)
		return 1
	}
	defer os.RemoveAll(work)

	before := snapshot()
	// Whatever happens from here on, the cluster goes down.
	downOnce := sync.OnceFunc(func() { down(code != 0) })
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		s := <-sig
		logf("%v: tearing the cluster down", s)
		code = 1
		downOnce()
		os.RemoveAll(work)
		os.Exit(1)
	}()
	defer func() {
		if r := recover(); r != nil {
			logf("panic: %v", r)
			code = 1
		}
		t0 := time.Now()
		downOnce()
		logf("cluster down in %.1fs", time.Since(t0).Seconds())
		if left := leftovers(before, snapshot()); len(left) > 0 {
			logf("FAIL clean-up: left behind:\n  %s", strings.Join(left, "\n  "))
			code = 1
		} else {
			logf("PASS clean-up: no process, mount, netns, interface, cgroup or iptables/nftables rule of the cluster left")
		}
		sumMu.Lock()
		// By scenario number (the topologies ran side by side).
		slices.SortStableFunc(summaries, func(a, b string) int { return strings.Compare(a[5:7], b[5:7]) })
		for _, s := range summaries {
			fmt.Fprintln(os.Stderr, "e2e-node: "+s)
		}
		sumMu.Unlock()
		logf("total %.1fs", time.Since(total).Seconds())
	}()

	if err := setup(); err != nil {
		logf("setup failed: %v", err)
		return 1
	}
	clusterUp = true
	return m.Run()
}

// step runs and times one set-up step.
func step(name string, f func() error) error {
	t0 := time.Now()
	err := f()
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	logf("setup: %-28s %6.1fs", name, time.Since(t0).Seconds())
	return nil
}

func setup() error {
	if _, err := os.Stat(filepath.Join(state, "pids")); err == nil {
		logf("a cluster from an earlier run is still at %s: tearing it down first", state)
		down(false)
	}
	steps := []struct {
		name string
		f    func() error
	}{
		{"control-plane binaries", func() (err error) {
			binDir, err = lastLine(runCmd(repo, nil, "deploy/e2e/hack/build-bins.sh"))
			kubectlP = filepath.Join(binDir, "kubectl")
			return err
		}},
		{"node binaries", func() (err error) {
			nodeBin, err = lastLine(runCmd(repo, nil, "deploy/e2e/node/cluster/build-node-bins.sh"))
			return err
		}},
		{"project binaries + grpcurl", func() error {
			if err := proc.BuildTo(filepath.Join(work, "bin"), proc.ImageBinaries...); err != nil {
				return err
			}
			grpcurlP = filepath.Join(work, "grpcurl")
			_, err := runCmd(repo, []string{"CGO_ENABLED=0"}, "go", "build", "-modfile=tools/tools.mod", "-o", grpcurlP, "github.com/fullstorydev/grpcurl/cmd/grpcurl")
			return err
		}},
		{"image (deploy/image)", func() error {
			_, err := runCmd(filepath.Join(repo, "deploy/image"), nil, "go", "run", ".",
				"-bin", filepath.Join(work, "bin"), "-tag", imageTag, "-o", filepath.Join(work, "knowingnode.tar"))
			return err
		}},
		{"pause image", func() error {
			if err := proc.BuildTo(work, "./pause"); err != nil {
				return err
			}
			return pauseimage.Write(filepath.Join(work, "pause"), pauseTag, filepath.Join(work, "pause.tar"))
		}},
		{"cluster up (2 nodes)", func() error {
			_, err := runCmd(repo, []string{
				"BIN=" + binDir, "NODE_BIN=" + nodeBin, "STATE=" + state, fmt.Sprintf("NODES=%d", numNodes),
				"PAUSE_TAR=" + filepath.Join(work, "pause.tar"), "PAUSE_IMAGE=" + pauseTag,
				"IMPORT_TARS=" + filepath.Join(work, "knowingnode.tar"),
			}, "deploy/e2e/node/cluster/up.sh")
			if err != nil {
				return err
			}
			kubecfg = filepath.Join(state, "admin.kubeconfig")
			ip, err := os.ReadFile(filepath.Join(state, "node-ip"))
			nodeIP = strings.TrimSpace(string(ip))
			return err
		}},
		{"kubectl apply -k overlays", applyOverlays},
		{"rollouts", waitRollouts},
		{"frontends see the backends", settle},
	}
	for _, s := range steps {
		if err := step(s.name, s.f); err != nil {
			return err
		}
	}
	return nil
}

// applyOverlays applies deploy/overlays/all (every topology) and then
// deploy/overlays/nodeport (the deployment topology's Services as NodePorts)
// exactly as users would, through a generated kustomization that sets the
// image tag and holds the HorizontalPodAutoscalers still (hpaHold).
func applyOverlays() error {
	for _, overlay := range []string{"all", "nodeport"} {
		dir := filepath.Join(work, "kustomize-"+overlay)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, filepath.Join(repo, "deploy/overlays", overlay))
		if err != nil {
			return err
		}
		k := fmt.Sprintf(`apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
# deploy/overlays/%s as it is; only the image is the locally built one.
resources:
  - %s
images:
  - name: knowingnode
    newTag: %s
%s`, overlay, rel, strings.TrimPrefix(imageTag, "knowingnode:"), hpaHold)
		if err := os.WriteFile(filepath.Join(dir, "kustomization.yaml"), []byte(k), 0o644); err != nil {
			return err
		}
		if _, err := kubectl("apply", "-k", dir); err != nil {
			return err
		}
	}
	return nil
}

// hpaHold is the generated kustomization's patch that disables scaling in
// both directions on every HorizontalPodAutoscaler: with metrics-server in
// the cluster the HPAs act on real CPU, and the scenarios above count pods
// they set themselves (kubectl scale, the manifests' replicas) while their
// load would move a live HPA. The HPAs still compute their recommendation,
// and keep their policies: the autoscale scenarios lift one at a time.
const hpaHold = `patches:
  - target:
      kind: HorizontalPodAutoscaler
    patch: |-
      - op: add
        path: /spec/behavior/scaleUp/selectPolicy
        value: Disabled
      - op: add
        path: /spec/behavior/scaleDown/selectPolicy
        value: Disabled
`

func waitRollouts() error {
	var wg sync.WaitGroup
	errs := make([]error, 6)
	for i, r := range []string{
		namespace + " deployment/backend", namespace + " statefulset/backend-sts", dsNS + " daemonset/backend-ds",
		namespace + " deployment/frontend-deployment", namespace + " deployment/frontend-daemonset", namespace + " deployment/frontend-statefulset",
	} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f := strings.Fields(r)
			_, errs[i] = kubectl("-n", f[0], "rollout", "status", f[1], "--timeout=180s")
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// settle waits until EVERY frontend pod of the headless topologies has
// discovered exactly the ready backends: a frontend that started before its
// backends were ready sees them at its next refresh, not at once.
func settle() error {
	// The ClusterIP frontends: one OK answer from the VIP. A frontend that
	// dialled the VIP before kube-proxy programmed it, or before any backend
	// was ready, waits out gRPC's connect timeout and reconnect backoff.
	fes, err := readyPods(namespace, "component=frontend,controlling=deployment")
	if err != nil {
		return err
	}
	for _, fe := range fes {
		t0 := time.Now()
		var last string
		err := poll.Until(context.Background(), 90*time.Second, 250*time.Millisecond, "frontend "+fe.Metadata.Name+" to reach its backends", func(context.Context) error {
			r, err := fanout(fresh, "http://"+fe.Status.PodIP+":8080", "mode=EACH")
			if err != nil {
				return err
			}
			if len(r.Results) != 1 || r.Results[0].Code != "OK" {
				if len(r.Results) == 1 {
					last = r.Results[0].Code + " " + r.Results[0].Message
				}
				return fmt.Errorf("the VIP answered %+v", r.Results)
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("%s: %w", fe.Metadata.Name, err)
		}
		if d := time.Since(t0); d > time.Second {
			logf("setup: %s reached the backend VIP after %.1fs (last error: %s)", fe.Metadata.Name, d.Seconds(), last)
		}
	}
	for _, c := range []struct{ topology, ns, sel string }{
		{"statefulset", namespace, "component=backend,controlling=statefulset"},
		{"daemonset", dsNS, "component=backend,controlling=daemonset"},
	} {
		fes, err := readyPods(namespace, "component=frontend,controlling="+c.topology)
		if err != nil {
			return err
		}
		for _, fe := range fes {
			err := poll.Until(context.Background(), 60*time.Second, 250*time.Millisecond, "frontend "+fe.Metadata.Name+" to answer from the ready pods", func(context.Context) error {
				want, err := readyPods(c.ns, c.sel)
				if err != nil {
					return err
				}
				r, err := fanout(fresh, "http://"+fe.Status.PodIP+":8080", "mode=EACH")
				if err != nil {
					return err
				}
				return exactly(r, want)
			})
			if err != nil {
				return fmt.Errorf("%s: %w", fe.Metadata.Name, err)
			}
		}
	}
	return nil
}

// down tears the cluster down with cluster/down.sh, keeping its logs when
// the run failed.
func down(failed bool) {
	env := []string{"STATE=" + state, "NODE_BIN=" + nodeBin}
	if failed {
		keep := filepath.Join(os.TempDir(), "kne2e-logs-"+time.Now().UTC().Format("20060102T150405"))
		env = append(env, "KEEP_LOGS="+keep)
		logf("the run failed: the cluster's and the pods' logs are kept in %s", keep)
		if clusterUp || kubecfg != "" {
			// What the API saw, for the post-mortem.
			if out, err := kubectl("get", "all,events", "-A", "-o", "wide"); err == nil || out != "" {
				os.MkdirAll(keep, 0o755)
				os.WriteFile(filepath.Join(keep, "kubectl-get-all.txt"), []byte(out), 0o644)
			}
		}
	}
	if out, err := runCmd(repo, env, "deploy/e2e/node/cluster/down.sh"); err != nil {
		logf("down.sh: %v\n%s", err, out)
	}
}

// runCmd runs a command in dir with extra env, bounded by the longest step
// (a cold build of the pinned Kubernetes); the error carries its output.
func runCmd(dir string, env []string, name string, args ...string) (string, error) {
	return proc.Run(dir, env, 60*time.Minute, name, args...)
}

func lastLine(out string, err error) (string, error) {
	if err != nil {
		return "", err
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	return strings.TrimSpace(lines[len(lines)-1]), nil
}

func kubectl(args ...string) (string, error) {
	return proc.Run("", nil, 200*time.Second, kubectlP, append([]string{"--kubeconfig", kubecfg}, args...)...)
}

// ---- clean-up verification ------------------------------------------------

// snapshot is what a cluster could leave behind on the host.
type hostState struct {
	procs, mounts, links, netns, cgroups, rules []string
}

var ownRule = regexp.MustCompile(`KUBE-|CNI-|kne2e|cni[0-9]`)

func snapshot() hostState {
	var s hostState
	// Processes of the cluster: any whose command line names the state dir,
	// or one of the cluster's binaries.
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		if e.Name()[0] < '0' || e.Name()[0] > '9' {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err != nil || len(b) == 0 {
			continue
		}
		cmd := strings.ReplaceAll(strings.TrimRight(string(b), "\x00"), "\x00", " ")
		// Containers: any process in a kubelet's cgroup tree.
		cg, _ := os.ReadFile("/proc/" + e.Name() + "/cgroup")
		if strings.Contains(cmd, state+"/") || strings.Contains(cmd, state+" ") ||
			(nodeBin != "" && strings.Contains(cmd, nodeBin)) || strings.Contains(string(cg), "/kne2e-node") {
			s.procs = append(s.procs, e.Name()+" "+cmd)
		}
	}
	if b, err := os.ReadFile("/proc/self/mountinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			f := strings.Fields(l)
			if len(f) > 4 && (strings.HasPrefix(f[4], state) || strings.Contains(f[4], "/var/lib/kubelet") ||
				strings.Contains(f[4], "/run/netns/cni-")) {
				s.mounts = append(s.mounts, f[4])
			}
		}
	}
	if out, err := exec.Command("ip", "-o", "link").Output(); err == nil {
		for _, l := range strings.Split(string(out), "\n") {
			// The bridges of up.sh and the veths of the CNI bridge plugin.
			if f := strings.Fields(l); len(f) > 1 {
				name := strings.TrimSuffix(strings.SplitN(f[1], "@", 2)[0], ":")
				if strings.HasPrefix(name, "cni") || strings.HasPrefix(name, "veth") {
					s.links = append(s.links, name)
				}
			}
		}
	}
	if out, err := exec.Command("ip", "netns", "list").Output(); err == nil {
		s.netns = strings.Fields(string(out))
	}
	cgs, _ := filepath.Glob("/sys/fs/cgroup/*/kne2e-node*")
	s.cgroups = cgs
	for _, c := range [][]string{{"iptables-save"}, {"ip6tables-save"}, {"nft", "list", "ruleset"}} {
		if out, err := exec.Command(c[0], c[1:]...).Output(); err == nil {
			for _, l := range strings.Split(string(out), "\n") {
				if ownRule.MatchString(l) {
					s.rules = append(s.rules, c[0]+": "+strings.TrimSpace(l))
				}
			}
		}
	}
	if ents, err := os.ReadDir("/var/lib/cni/results"); err == nil {
		for _, e := range ents {
			if strings.HasPrefix(e.Name(), "kne2e-") || strings.HasPrefix(e.Name(), "cni-loopback-") {
				s.mounts = append(s.mounts, "libcni cache "+e.Name())
			}
		}
	}
	for _, p := range []string{"/var/lib/kubelet", "/var/log/pods", "/var/log/containers", "/run/containerd", "/var/lib/cni", "/etc/cni/net.d/10-kne2e.conflist"} {
		if _, err := os.Stat(p); err == nil {
			s.mounts = append(s.mounts, "path "+p)
		}
	}
	return s
}

func leftovers(before, after hostState) []string {
	var out []string
	diff := func(kind string, b, a []string) {
		for _, x := range a {
			if !slices.Contains(b, x) {
				out = append(out, kind+": "+x)
			}
		}
	}
	diff("process", before.procs, after.procs)
	diff("mount", before.mounts, after.mounts)
	diff("interface", before.links, after.links)
	diff("netns", before.netns, after.netns)
	diff("cgroup", before.cgroups, after.cgroups)
	diff("rule", before.rules, after.rules)
	if _, err := os.Stat(state); err == nil {
		out = append(out, "state dir: "+state)
	}
	return out
}

// ---- API and HTTP helpers -------------------------------------------------

type pod struct {
	Metadata struct {
		Name              string            `json:"name"`
		Namespace         string            `json:"namespace"`
		UID               string            `json:"uid"`
		Labels            map[string]string `json:"labels"`
		DeletionTimestamp *time.Time        `json:"deletionTimestamp"`
	} `json:"metadata"`
	Spec struct {
		NodeName           string `json:"nodeName"`
		ServiceAccountName string `json:"serviceAccountName"`
	} `json:"spec"`
	Status struct {
		Phase      string `json:"phase"`
		PodIP      string `json:"podIP"`
		HostIP     string `json:"hostIP"`
		Conditions []struct {
			Type               string    `json:"type"`
			Status             string    `json:"status"`
			LastTransitionTime time.Time `json:"lastTransitionTime"`
		} `json:"conditions"`
	} `json:"status"`
}

func (p pod) ready() bool {
	for _, c := range p.Status.Conditions {
		if c.Type == "Ready" {
			return c.Status == "True"
		}
	}
	return false
}

func (p pod) readySince() time.Time {
	for _, c := range p.Status.Conditions {
		if c.Type == "Ready" && c.Status == "True" {
			return c.LastTransitionTime
		}
	}
	return time.Time{}
}

func pods(ns, selector string) ([]pod, error) {
	out, err := kubectl("-n", ns, "get", "pods", "-l", selector, "-o", "json")
	if err != nil {
		return nil, err
	}
	var l struct {
		Items []pod `json:"items"`
	}
	if err := json.Unmarshal([]byte(out), &l); err != nil {
		return nil, err
	}
	return l.Items, nil
}

// readyPods are the pods that are Ready and not being deleted.
func readyPods(ns, selector string) ([]pod, error) {
	all, err := pods(ns, selector)
	if err != nil {
		return nil, err
	}
	var out []pod
	for _, p := range all {
		if p.ready() && p.Metadata.DeletionTimestamp == nil {
			out = append(out, p)
		}
	}
	return out, nil
}

func serviceIP(ns, name string) (string, error) {
	out, err := kubectl("-n", ns, "get", "service", name, "-o", "jsonpath={.spec.clusterIP}")
	return strings.TrimSpace(out), err
}

// fanoutResponse is a fan-out's reply and when it arrived.
type fanoutResponse struct {
	*knowingnodev1.FanOutResponse
	at time.Time
}

// fresh is a client with no keep-alive: each call is a new connection, so
// kube-proxy picks a frontend pod per call as for a new user.
var fresh = &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}

func fanout(c *http.Client, base, query string) (fanoutResponse, error) {
	r := fanoutResponse{FanOutResponse: &knowingnodev1.FanOutResponse{}}
	resp, err := c.Get(base + "/v1/fanout?" + query)
	if err != nil {
		return r, err
	}
	defer resp.Body.Close()
	var body bytes.Buffer
	body.ReadFrom(resp.Body)
	r.at = time.Now()
	if resp.StatusCode != http.StatusOK {
		return r, fmt.Errorf("GET %s/v1/fanout?%s: %s: %s", base, query, resp.Status, strings.TrimSpace(body.String()))
	}
	if err := apijson.Decode(body.Bytes(), r.FanOutResponse); err != nil {
		return r, err
	}
	return r, nil
}

// downwardFields are the identity fields the manifests wire through the
// Downward API (env and the downwardAPI volume).
var downwardFields = []string{"pod_name", "pod_namespace", "pod_ip", "pod_ips", "pod_uid", "node_name", "node_ip",
	"service_account", "labels", "annotations", "cpu_limit_millicores", "memory_limit_bytes"}

// checkIdentity compares a backend's self-reported identity with its pod in
// the API, and that every field came from the Downward API.
func checkIdentity(id *knowingnodev1.Identity, p pod) error {
	if id == nil {
		return fmt.Errorf("no identity")
	}
	var bad []string
	cmp := func(field, got, want string) {
		if got != want {
			bad = append(bad, fmt.Sprintf("%s=%q, API says %q", field, got, want))
		}
	}
	cmp("podName", id.PodName, p.Metadata.Name)
	cmp("podNamespace", id.PodNamespace, p.Metadata.Namespace)
	cmp("podIp", id.PodIp, p.Status.PodIP)
	cmp("podUid", id.PodUid, p.Metadata.UID)
	cmp("nodeName", id.NodeName, p.Spec.NodeName)
	cmp("nodeIp", id.NodeIp, p.Status.HostIP)
	cmp("serviceAccount", id.ServiceAccount, p.Spec.ServiceAccountName)
	for k, v := range p.Metadata.Labels {
		cmp("labels["+k+"]", id.Labels[k], v)
	}
	for _, f := range downwardFields {
		if src := id.Sources[f]; src != knowingnodev1.Source_SOURCE_DOWNWARD_API {
			bad = append(bad, fmt.Sprintf("sources[%s]=%v", f, src))
		}
	}
	if len(bad) > 0 {
		return fmt.Errorf("%s: %s", p.Metadata.Name, strings.Join(bad, "; "))
	}
	return nil
}

func names(ps []pod) []string {
	var n []string
	for _, p := range ps {
		n = append(n, p.Metadata.Name)
	}
	slices.Sort(n)
	return n
}

func resultPods(r fanoutResponse) []string {
	var n []string
	for _, x := range r.Results {
		if x.Identity != nil {
			n = append(n, x.GetIdentity().GetPodName())
		} else {
			n = append(n, "!"+x.Address+" "+x.Code)
		}
	}
	slices.Sort(n)
	return n
}

// exactly checks that an EACH fan-out answered from exactly the given pods,
// each with the identity the API gives it.
func exactly(r fanoutResponse, want []pod) error {
	if got, w := resultPods(r), names(want); !slices.Equal(got, w) {
		return fmt.Errorf("fan-out answered from %v, the API lists %v", got, w)
	}
	byName := map[string]pod{}
	for _, p := range want {
		byName[p.Metadata.Name] = p
	}
	for _, x := range r.Results {
		if x.Code != "OK" {
			return fmt.Errorf("%s: %s %s", x.Address, x.Code, x.Message)
		}
		if err := checkIdentity(x.Identity, byName[x.GetIdentity().GetPodName()]); err != nil {
			return err
		}
	}
	return nil
}
