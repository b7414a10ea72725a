package e2e

import (
	"github.com/knowingnode/knowingnode/harness/proc"

	"github.com/knowingnode/knowingnode/harness/poll"

	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestBinariesWithManifestEnv runs the project's real binaries with exactly
// the environment each manifest gives its container (the Downward API values
// filled in as the kubelet would, listen addresses moved to free loopback
// ports, the frontends' targets pointed at the test's CoreDNS) and checks
// what the pod spec promises: the startup, readiness and liveness probes
// succeed at the ports and paths they name within their failure budget; the
// frontends discover the same endpoints as the EndpointSlices; on SIGTERM
// readiness fails at once and the process exits after DRAIN_DELAY but within
// terminationGracePeriodSeconds.
func TestBinariesWithManifestEnv(t *testing.T) {
	line := report(t, "binaries x manifests")
	set, _, _, _ := applyAndRollout(t, "all")
	bin := buildBinaries(t)
	var pods []*corev1.PodTemplateSpec
	var names []string
	for _, d := range set.Deployments {
		pods, names = append(pods, &d.Spec.Template), append(names, d.Name)
	}
	var (
		mu    sync.Mutex
		lines []string
	)
	// In parallel: each waits out its own DRAIN_DELAY.
	t.Run("group", func(t *testing.T) {
		for i, tpl := range pods {
			t.Run(names[i], func(t *testing.T) {
				t.Parallel()
				line := runPodLocally(t, bin, tpl, names[i])
				mu.Lock()
				defer mu.Unlock()
				lines = append(lines, line)
			})
		}
	})
	sort.Strings(lines)
	*line = strings.Join(lines, "; ")
}

// buildBinaries builds the real backend and frontend, as the image holds them.
func buildBinaries(t *testing.T) string { return proc.Build(t) }

func runPodLocally(t *testing.T, bin string, tpl *corev1.PodTemplateSpec, name string) string {
	ct := tpl.Spec.Containers[0]
	exe := filepath.Join(bin, path.Base(ct.Command[0]))

	// Every plain env var the manifest sets must be one the binary reads: a
	// misspelt name would be ignored silently. (The Downward API ones are
	// read by the identity code, and checked statically.)
	known := envOfFlags(t, exe)
	for _, e := range ct.Env {
		if e.ValueFrom == nil && !known[e.Name] {
			t.Errorf("%s sets env %s, which %s has no flag for (known: %v)", name, e.Name, path.Base(exe), slices.Sorted(maps.Keys(known)))
		}
	}

	// Listen addresses: every ":<containerPort>" value becomes a loopback
	// address with a port the binary picks itself; its serving line names
	// it ("grpc=", "http=", "admin=" after GRPC_ADDR, HTTP_ADDR, ADMIN_ADDR).
	listener := map[int32]string{} // container port -> serving-line key
	env := []string{}
	downward := t.TempDir()
	for _, e := range ct.Env {
		v, err := envValue(tpl, ct, e, downward)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range ct.Ports {
			if v == fmt.Sprintf(":%d", p.ContainerPort) {
				v = "127.0.0.1:0"
				listener[p.ContainerPort] = strings.ToLower(strings.TrimSuffix(e.Name, "_ADDR"))
			}
		}
		if e.Name == "TARGETS" {
			v = strings.ReplaceAll(v, ":///", "://"+cl.DNSAddr+"/")
		}
		env = append(env, e.Name+"="+v)
	}
	// The Downward API volume, as the kubelet writes it.
	writeDownward(t, tpl, downward)
	env = append(env, "DOWNWARD_DIR="+downward)

	t0 := time.Now()
	p, err := proc.Launch(name, exe, proc.Options{Env: env})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = p.Kill()
		if t.Failed() {
			t.Logf("%s log:\n%s", name, p.Output())
		}
	})
	if err := p.WaitServing(time.Minute); err != nil {
		t.Fatal(err)
	}
	ports := map[int32]string{}
	for cp, key := range listener {
		if ports[cp] = p.Addrs[key]; ports[cp] == "" {
			t.Fatalf("%s: no %q address in its serving line %v", name, key, p.Addrs)
		}
	}

	probe := func(ctx context.Context, p *corev1.Probe) error {
		switch {
		case p.GRPC != nil:
			return grpcHealth(ctx, ports[p.GRPC.Port])
		case p.HTTPGet != nil:
			port := p.HTTPGet.Port.IntVal
			for _, cp := range ct.Ports {
				if cp.Name == p.HTTPGet.Port.StrVal {
					port = cp.ContainerPort
				}
			}
			return httpGet(ctx, "http://"+ports[port]+p.HTTPGet.Path)
		}
		return fmt.Errorf("unsupported probe %v", p.ProbeHandler)
	}

	// The startup probe must pass within its failure budget, as the kubelet
	// would allow (counted from the start), then readiness and liveness.
	budget := time.Duration(ct.StartupProbe.FailureThreshold*ct.StartupProbe.PeriodSeconds) * time.Second
	poll.T(t, budget, "the startup probe to pass", func(ctx context.Context) error { return probe(ctx, ct.StartupProbe) })
	started := time.Since(t0)
	for _, p := range []*corev1.Probe{ct.ReadinessProbe, ct.LivenessProbe} {
		ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
		if err := probe(ctx, p); err != nil {
			t.Errorf("%s probe: %v", name, err)
		}
		cancel()
	}

	detail := fmt.Sprintf("%s up in %s", name, started.Round(10*time.Millisecond))
	if ct.Name == "frontend" {
		detail += ", " + checkFrontendTargets(t, ports[8080], tpl)
	}

	// SIGTERM: readiness fails at once (the pod leaves the endpoints), the
	// process drains, then exits within the grace period.
	grace := time.Duration(*tpl.Spec.TerminationGracePeriodSeconds) * time.Second
	drain, _ := time.ParseDuration(envLiteral(ct, "DRAIN_DELAY"))
	t1 := time.Now()
	if err := p.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	poll.T(t, drain, "readiness to fail after SIGTERM", func(ctx context.Context) error {
		if probe(ctx, ct.ReadinessProbe) == nil {
			return fmt.Errorf("still ready after SIGTERM")
		}
		return nil
	})
	notReady := time.Since(t1)
	select {
	case <-p.Exited:
		took := time.Since(t1)
		if st := p.Cmd.ProcessState; !st.Success() {
			t.Errorf("%s exited with %v after SIGTERM", name, st)
		}
		if took < drain {
			t.Errorf("%s exited %s after SIGTERM, before its DRAIN_DELAY %s", name, took, drain)
		}
		detail += fmt.Sprintf(", SIGTERM: unready in %s, exit in %s (drain %s, grace %s)",
			notReady.Round(10*time.Millisecond), took.Round(10*time.Millisecond), drain, grace)
	case <-time.After(grace):
		t.Errorf("%s still running %s after SIGTERM: the kubelet would SIGKILL it", name, grace)
	}
	return detail
}

// envOfFlags returns the env vars a binary's flags read, from its -h text
// ("... (env NAME) ...").
func envOfFlags(t *testing.T, exe string) map[string]bool {
	t.Helper()
	out, err := exec.Command(exe, "-h").Output()
	if err != nil {
		t.Fatalf("%s -h: %v", exe, err)
	}
	known := map[string]bool{}
	for _, m := range envInUsage.FindAllStringSubmatch(string(out), -1) {
		known[m[1]] = true
	}
	if len(known) == 0 {
		t.Fatalf("%s -h names no env vars:\n%s", exe, out)
	}
	return known
}

var envInUsage = regexp.MustCompile(`\(env ([A-Z0-9_]+)\)`)

// envValue resolves one env entry as the kubelet would for this test pod.
func envValue(tpl *corev1.PodTemplateSpec, ct corev1.Container, e corev1.EnvVar, downward string) (string, error) {
	if e.ValueFrom == nil {
		return e.Value, nil
	}
	if f := e.ValueFrom.FieldRef; f != nil {
		v, ok := map[string]string{
			"metadata.name":           "e2e-" + ct.Name + "-0",
			"metadata.namespace":      "knowingnode",
			"metadata.uid":            "00000000-0000-4000-8000-000000000001",
			"status.podIP":            "127.0.0.1",
			"status.podIPs":           "127.0.0.1",
			"spec.nodeName":           "node-0",
			"status.hostIP":           "10.0.0.1",
			"spec.serviceAccountName": "default",
		}[f.FieldPath]
		if !ok {
			return "", fmt.Errorf("env %s: fieldRef %s not simulated", e.Name, f.FieldPath)
		}
		return v, nil
	}
	if r := e.ValueFrom.ResourceFieldRef; r != nil {
		res, ok := strings.CutPrefix(r.Resource, "limits.")
		if !ok {
			return "", fmt.Errorf("env %s: %s not simulated", e.Name, r.Resource)
		}
		q := ct.Resources.Limits[corev1.ResourceName(res)]
		// The kubelet rounds up: ceil(quantity / divisor).
		return strconv.FormatInt(int64(math.Ceil(float64(q.MilliValue())/float64(r.Divisor.MilliValue()))), 10), nil
	}
	return "", fmt.Errorf("env %s: source not simulated", e.Name)
}

func envLiteral(ct corev1.Container, name string) string {
	for _, e := range ct.Env {
		if e.Name == name {
			return e.Value
		}
	}
	return ""
}

// writeDownward writes labels and annotations in the Downward API's format.
func writeDownward(t *testing.T, tpl *corev1.PodTemplateSpec, dir string) {
	t.Helper()
	format := func(m map[string]string) []byte {
		var lines []string
		for k, v := range m {
			lines = append(lines, fmt.Sprintf("%s=%q", k, v))
		}
		sort.Strings(lines)
		return []byte(strings.Join(lines, "\n"))
	}
	for file, m := range map[string]map[string]string{"labels": tpl.Labels, "annotations": tpl.Annotations} {
		if err := os.WriteFile(filepath.Join(dir, file), format(m), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// checkFrontendTargets asks the running frontend's /v1/targets what it
// discovered, and compares with the EndpointSlices (the VIP for ClusterIP).
func checkFrontendTargets(t *testing.T, httpAddr string, tpl *corev1.PodTemplateSpec) string {
	t.Helper()
	svcName := map[string]string{"deployment": "knowingnode/backend", "statefulset": "knowingnode/backend-sts", "daemonset": "knowingnode-node/backend-ds"}[tpl.Labels["controlling"]]
	ns, name, _ := strings.Cut(svcName, "/")
	var got []string
	poll.T(t, 15*time.Second, "the frontend to discover what the cluster has", func(ctx context.Context) error {
		svc, err := cl.Client.CoreV1().Services(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		want := []string{net.JoinHostPort(svc.Spec.ClusterIP, "9090")}
		if svc.Spec.ClusterIP == corev1.ClusterIPNone {
			ips, err := sliceIPs(ctx, ns, name)
			if err != nil {
				return err
			}
			want = nil
			for _, ip := range ips {
				want = append(want, net.JoinHostPort(ip, "9090"))
			}
		}
		body, err := httpBody(ctx, "http://"+httpAddr+"/v1/targets")
		if err != nil {
			return err
		}
		var resp struct {
			Targets []struct {
				Name      string
				LastError string
				Endpoints []struct{ Address string }
			}
		}
		if err := json.Unmarshal(body, &resp); err != nil {
			return fmt.Errorf("/v1/targets: %w: %s", err, body)
		}
		if len(resp.Targets) != 1 {
			return fmt.Errorf("/v1/targets lists %d targets: %s", len(resp.Targets), body)
		}
		got = nil
		for _, e := range resp.Targets[0].Endpoints {
			got = append(got, e.Address)
		}
		sort.Strings(got)
		if !slices.Equal(got, want) {
			return fmt.Errorf("frontend discovered %v, want %v (last error %q)", got, want, resp.Targets[0].LastError)
		}
		return nil
	})
	return fmt.Sprintf("/v1/targets = %d endpoint(s) as in the cluster", len(got))
}

func grpcHealth(ctx context.Context, addr string) error {
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer conn.Close()
	resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
	if err != nil {
		return err
	}
	if resp.Status != healthpb.HealthCheckResponse_SERVING {
		return fmt.Errorf("health %s", resp.Status)
	}
	return nil
}

func httpGet(ctx context.Context, url string) error {
	_, err := httpBody(ctx, url)
	return err
}

func httpBody(ctx context.Context, url string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	// The kubelet counts 200-399 as success.
	if resp.StatusCode < 200 || resp.StatusCode >= 400 {
		return body, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return body, nil
}
