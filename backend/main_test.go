package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"

	knowingnodev1 "github.com/knowingnode/knowingnode/gen/knowingnode/v1"
	"github.com/knowingnode/knowingnode/harness/proc"
)

// TestBackend builds the binary once and runs it as a user would.
func TestBackend(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	bin := filepath.Join(proc.Build(t, "."), "backend")
	t.Run("Identity", func(t *testing.T) { testIdentity(t, bin) })
	t.Run("SIGTERMDuringCall", func(t *testing.T) { testSIGTERMDuringCall(t, bin) })
	t.Run("InjectedErrorsCounted", func(t *testing.T) { testInjectedErrorsCounted(t, bin) })
	t.Run("BadFlags", func(t *testing.T) { testBadFlags(t, bin) })
	t.Run("Privacy", func(t *testing.T) { testPrivacy(t, bin) })
	t.Run("ORCA", func(t *testing.T) { testORCA(t, bin) })
}

// testPrivacy: secret-looking annotations and kubectl's copy of the manifest
// stay out of the identity unless allowed, and reflection can be turned off.
func testPrivacy(t *testing.T, bin string) {
	dir := t.TempDir()
	annotations := "kubectl.kubernetes.io/last-applied-configuration=\"{\\\"password\\\":\\\"hunter2\\\"}\"\n" +
		"example.com/db-password=\"hunter2\"\nteam=\"search\"\n"
	if err := os.WriteFile(filepath.Join(dir, "annotations"), []byte(annotations), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		args       []string
		env        []string
		revealed   []string
		reflection bool
	}{
		{nil, nil, []string{"team"}, true},
		{[]string{"--no-reflection"}, nil, []string{"team"}, false},
		{nil, []string{"NO_REFLECTION=true", "ANNOTATIONS_ALLOW=*"},
			[]string{"example.com/db-password", "kubectl.kubernetes.io/last-applied-configuration", "team"}, false},
	} {
		p := runBackend(t, bin, append([]string{"POD_NAME=backend-0"}, c.env...), append([]string{
			"--grpc-addr", "127.0.0.1:0", "--admin-addr", "", "--downward-dir", dir, "--drain-delay", "0s"}, c.args...)...)
		resp, err := knowingnodev1.NewIdentityServiceClient(p.conn).GetIdentity(t.Context(), &knowingnodev1.GetIdentityRequest{})
		if err != nil {
			t.Fatal(err)
		}
		got := slices.Sorted(maps.Keys(resp.GetIdentity().GetAnnotations()))
		if !slices.Equal(got, c.revealed) {
			t.Errorf("%v %v: annotations %q, want %q", c.args, c.env, got, c.revealed)
		}
		// Its own context, ended before the stop: an open reflection stream
		// would hold the backend's graceful stop for its whole timeout.
		ctx, cancel := context.WithCancel(t.Context())
		stream, err := reflectionpb.NewServerReflectionClient(p.conn).ServerReflectionInfo(ctx)
		if err == nil {
			err = stream.Send(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{}})
			// io.EOF from Send: the server already ended the stream (an
			// Unimplemented answer can come first); Recv has its status.
			if err == nil || errors.Is(err, io.EOF) {
				_, err = stream.Recv()
			}
		}
		cancel()
		if served := status.Code(err) != codes.Unimplemented; served != c.reflection || (served && err != nil) {
			t.Errorf("%v %v: reflection: %v, want served=%v", c.args, c.env, err, c.reflection)
		}
		p.Stop(t)
	}
}

// backendProc is a running backend and a client connection to it.
type backendProc struct {
	*proc.Process
	conn *grpc.ClientConn
}

func runBackend(t *testing.T, bin string, env []string, args ...string) *backendProc {
	t.Helper()
	p := &backendProc{Process: proc.Start(t, bin, env, args...)}
	conn, err := grpc.NewClient(p.Addrs["grpc"], grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	p.conn = conn
	return p
}

// metric returns the sum of the samples of a Prometheus counter whose
// labels include all of the given label="value" pairs.
func (p *backendProc) metric(t *testing.T, name string, labels ...string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + p.Addrs["admin"] + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var sum float64
	for _, line := range strings.Split(string(b), "\n") {
		if !strings.HasPrefix(line, name+"{") {
			continue
		}
		if slices.ContainsFunc(labels, func(l string) bool { return !strings.Contains(line, l) }) {
			continue
		}
		f := strings.Fields(line)
		v, _ := strconv.ParseFloat(f[len(f)-1], 64)
		sum += v
	}
	return sum
}

func testIdentity(t *testing.T, bin string) {
	dir := t.TempDir()
	labels := "app=\"backend\"\nstatefulset.kubernetes.io/pod-name=\"backend-0\""
	if err := os.WriteFile(filepath.Join(dir, "labels"), []byte(labels), 0o644); err != nil {
		t.Fatal(err)
	}
	// annotations missing: a warning, and the server still starts.
	p := runBackend(t, bin, []string{"POD_NAME=backend-0", "NODE_NAME=node-a", "POD_IP=127.0.0.1"},
		"--grpc-addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0", "--downward-dir", dir, "--drain-delay", "0s")
	ctx := t.Context()

	resp, err := knowingnodev1.NewIdentityServiceClient(p.conn).GetIdentity(ctx, &knowingnodev1.GetIdentityRequest{})
	if err != nil {
		t.Fatal(err)
	}
	id := resp.GetIdentity()
	if id.GetPodName() != "backend-0" || id.GetNodeName() != "node-a" || id.GetPodIp() != "127.0.0.1" {
		t.Errorf("identity pod %q node %q ip %q; want backend-0 node-a 127.0.0.1", id.GetPodName(), id.GetNodeName(), id.GetPodIp())
	}
	if id.GetTier() != knowingnodev1.Tier_TIER_BACKEND {
		t.Errorf("tier %v", id.GetTier())
	}
	if id.GetLabels()["app"] != "backend" || id.GetLabels()["statefulset.kubernetes.io/pod-name"] != "backend-0" {
		t.Errorf("labels %v", id.GetLabels())
	}
	wantSrc := map[string]knowingnodev1.Source{
		"pod_name":      knowingnodev1.Source_SOURCE_DOWNWARD_API,
		"node_name":     knowingnodev1.Source_SOURCE_DOWNWARD_API,
		"pod_ip":        knowingnodev1.Source_SOURCE_DOWNWARD_API,
		"labels":        knowingnodev1.Source_SOURCE_DOWNWARD_API,
		"annotations":   knowingnodev1.Source_SOURCE_ABSENT,
		"pod_namespace": knowingnodev1.Source_SOURCE_ABSENT,
	}
	for f, want := range wantSrc {
		if got := id.GetSources()[f]; got != want {
			t.Errorf("source of %s = %v, want %v", f, got, want)
		}
	}
	if !slices.Contains(id.GetServingAddresses(), "grpc="+p.Addrs["grpc"]) {
		t.Errorf("serving addresses %q lack grpc=%s", id.GetServingAddresses(), p.Addrs["grpc"])
	}
	if id.GetStartTime() == nil || id.GetBuild().GetGoVersion() == "" {
		t.Errorf("start time %v build %v", id.GetStartTime(), id.GetBuild())
	}

	hc, err := healthpb.NewHealthClient(p.conn).Check(ctx, &healthpb.HealthCheckRequest{})
	if err != nil || hc.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Errorf("health %v, %v", hc.GetStatus(), err)
	}
	services := listServices(t, p.conn)
	for _, want := range []string{"knowingnode.v1.IdentityService", "grpc.health.v1.Health", "grpc.reflection.v1.ServerReflection"} {
		if !slices.Contains(services, want) {
			t.Errorf("reflection lists %q; missing %s", services, want)
		}
	}

	p.Cmd.Process.Signal(syscall.SIGTERM)
	if code := p.Wait(t); code != 0 {
		t.Errorf("exit code %d after SIGTERM, want 0", code)
	}
}

func listServices(t *testing.T, conn *grpc.ClientConn) []string {
	t.Helper()
	stream, err := reflectionpb.NewServerReflectionClient(conn).ServerReflectionInfo(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer stream.CloseSend()
	if err := stream.Send(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{}}); err != nil {
		t.Fatal(err)
	}
	resp, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, s := range resp.GetListServicesResponse().GetService() {
		out = append(out, s.GetName())
	}
	return out
}

func testSIGTERMDuringCall(t *testing.T, bin string) {
	// The call takes 3 s of injected latency; SIGTERM comes while it runs.
	// No drain delay, so the call has to survive GracefulStop itself.
	p := runBackend(t, bin, []string{"POD_NAME=backend-0"},
		"--grpc-addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0", "--downward-dir", "",
		"--fault-latency", "3s", "--drain-delay", "0s", "--shutdown-timeout", "30s")
	ctx := t.Context()
	errc := make(chan error, 1)
	go func() {
		resp, err := knowingnodev1.NewIdentityServiceClient(p.conn).GetIdentity(ctx, &knowingnodev1.GetIdentityRequest{})
		if err == nil && resp.GetIdentity().GetPodName() != "backend-0" {
			err = fmt.Errorf("pod %q", resp.GetIdentity().GetPodName())
		}
		errc <- err
	}()
	// The server has the call once its metrics count it as started.
	for p.metric(t, "grpc_server_started_total", `grpc_method="GetIdentity"`) < 1 {
		select {
		case err := <-errc:
			t.Fatalf("call ended before SIGTERM: %v", err)
		case <-time.After(10 * time.Millisecond):
		}
	}
	if err := p.Cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.Exited:
		t.Fatal("process exited while a call was in flight")
	case err := <-errc:
		if err != nil {
			t.Errorf("in-flight call: %v; want OK", err)
		}
	}
	if code := p.Wait(t); code != 0 {
		t.Errorf("exit code %d, want 0", code)
	}
}

func testInjectedErrorsCounted(t *testing.T, bin string) {
	p := runBackend(t, bin, nil,
		"--grpc-addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0", "--downward-dir", "", "--drain-delay", "0s",
		"--fault-error-rate", "1", "--fault-error-code", "RESOURCE_EXHAUSTED")
	_, err := knowingnodev1.NewIdentityServiceClient(p.conn).GetIdentity(t.Context(), &knowingnodev1.GetIdentityRequest{})
	if status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("GetIdentity = %v; want RESOURCE_EXHAUSTED", err)
	}
	// Health is never faulted.
	if _, err := healthpb.NewHealthClient(p.conn).Check(t.Context(), &healthpb.HealthCheckRequest{}); err != nil {
		t.Errorf("health under faults: %v", err)
	}
	if n := p.metric(t, "grpc_server_handled_total", `grpc_method="GetIdentity"`, `grpc_code="ResourceExhausted"`); n != 1 {
		t.Errorf("metrics count %v injected RESOURCE_EXHAUSTED, want 1", n)
	}
}

func testBadFlags(t *testing.T, bin string) {
	tests := []struct {
		name string
		args []string
		env  []string
		want string // the flag the one line must name
	}{
		{"unknown flag", []string{"--nope"}, nil, "-nope"},
		{"bad duration", []string{"--drain-delay", "soon"}, nil, "-drain-delay"},
		{"bad env duration", nil, []string{"DRAIN_DELAY=soon"}, "-drain-delay"},
		{"empty address", []string{"--grpc-addr", ""}, nil, "-grpc-addr"},
		{"rate out of range", []string{"--fault-error-rate", "2"}, nil, "-fault-error-rate"},
		{"unknown code", []string{"--fault-error-code", "BROKEN"}, nil, "-fault-error-code"},
		{"claim out of range", []string{"--orca-utilization", "-1"}, nil, "-orca-utilization"},
		{"bad env interval", nil, []string{"ORCA_INTERVAL=1ms"}, "-orca-interval"},
		{"no calls reported", []string{"--orca-call-fraction", "0"}, nil, "-orca-call-fraction"},
		{"fraction without every call", []string{"--orca-call-fraction", "0.1"}, nil, "--orca-every-call"},
		{"OK as injected code", []string{"--fault-error-rate", "0.5", "--fault-error-code", "OK"}, nil, "-fault-error-code"},
		{"bad log format", []string{"--log-format", "xml"}, nil, "-log-format"},
		{"bad log level", []string{"--log-level", "loud"}, nil, "-log-level"},
		{"two bad values", []string{"--max-recv-bytes", "1", "--max-concurrent-streams", "0"}, nil, "-max-recv-bytes"},
		{"extra argument", []string{"serve"}, nil, `"serve"`},
		// Every other flag's bad values.
		{"gRPC address without port", []string{"--grpc-addr", "127.0.0.1"}, nil, "-grpc-addr"},
		{"gRPC port out of range", []string{"--grpc-addr", ":70000"}, nil, "-grpc-addr"},
		{"admin address without port", []string{"--admin-addr", "localhost"}, nil, "-admin-addr"},
		{"pprof with the admin port off", []string{"--admin-addr", "", "--pprof"}, nil, "-pprof"},
		{"pprof not a bool", []string{"--pprof=yes please"}, nil, "-pprof"},
		{"negative drain", []string{"--drain-delay", "-1s"}, nil, "-drain-delay"},
		{"zero shutdown timeout", []string{"--shutdown-timeout", "0s"}, nil, "-shutdown-timeout"},
		{"connection age below 1s", []string{"--max-connection-age", "10ms"}, nil, "-max-connection-age"},
		{"negative connection age grace", []string{"--max-connection-age-grace", "-1s"}, nil, "-max-connection-age-grace"},
		{"write timeout below 1s", []string{"--http-write-timeout", "1ms"}, nil, "-http-write-timeout"},
		{"recv bytes too large", []string{"--max-recv-bytes", "1000000000"}, nil, "-max-recv-bytes"},
		{"no streams", []string{"--max-concurrent-streams", "0"}, nil, "-max-concurrent-streams"},
		{"reflection not a bool", []string{"--no-reflection=maybe"}, nil, "-no-reflection"},
		{"too many annotation globs", []string{"--annotations-allow", strings.Repeat("x,", 101)}, nil, "-annotations-allow"},
		{"negative latency", []string{"--fault-latency", "-1s"}, nil, "-fault-latency"},
		{"latency over a minute", []string{"--fault-latency", "2m"}, nil, "-fault-latency"},
		{"negative jitter", []string{"--fault-jitter", "-1ms"}, nil, "-fault-jitter"},
		{"NaN error rate", []string{"--fault-error-rate", "NaN"}, nil, "-fault-error-rate"},
		{"NaN error rate from env", nil, []string{"FAULT_ERROR_RATE=NaN"}, "-fault-error-rate"},
		{"negative error rate", []string{"--fault-error-rate", "-0.1"}, nil, "-fault-error-rate"},
	}
	oneLine := regexp.MustCompile(`^backend: [^\n]+\n$`)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, bin, tt.args...)
			cmd.Env = append([]string{"PATH=" + os.Getenv("PATH")}, tt.env...)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			err := cmd.Run()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != 2 {
				t.Fatalf("exit %v; want code 2; stderr %q", err, stderr.String())
			}
			if !oneLine.MatchString(stderr.String()) || !strings.Contains(stderr.String(), tt.want) {
				t.Errorf("stderr %q; want one line naming %s", stderr.String(), tt.want)
			}
		})
	}
}
