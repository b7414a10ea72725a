// Command local runs the whole topology on one machine, no cluster needed:
// a DNS server answering the record shapes of Kubernetes cluster DNS for a
// headless Service of backends (A, _grpc._tcp SRV, per-pod names), the
// backends with fake Downward API identities spread over two fake nodes, each
// on its own loopback IP as pods have their own IPs, and a frontend that
// discovers them through that DNS server in every mode. `make run` runs it.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"maps"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/knowingnode/knowingnode/harness/clusterdns"
)

const (
	namespace = "local"
	service   = "backend"
	zone      = "cluster.local."
	grpcPort  = 9090
)

func main() {
	var (
		bin      = flag.String("bin", "bin", "directory holding the backend and frontend binaries")
		backends = flag.Int("backends", 3, "number of backends (1..50)")
		httpAddr = flag.String("http-addr", "127.0.0.1:8080", "frontend HTTP address")
		grpcAddr = flag.String("grpc-addr", "127.0.0.1:9090", "frontend gRPC address")
		dnsAddr  = flag.String("dns-addr", "127.0.0.1:1053", "address of the cluster-like DNS server")
	)
	flag.Parse()
	if err := validate(*backends, map[string]string{"http-addr": *httpAddr, "grpc-addr": *grpcAddr, "dns-addr": *dnsAddr}); err != nil {
		fmt.Fprintf(os.Stderr, "local: %v\n", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *bin, *backends, *httpAddr, *grpcAddr, *dnsAddr); err != nil {
		fmt.Fprintf(os.Stderr, "local: %v\n", err)
		os.Exit(1)
	}
}

// validate checks the flags before anything starts, so a bad value exits 2
// naming its flag.
func validate(backends int, addrs map[string]string) error {
	if backends < 1 || backends > 50 {
		return fmt.Errorf("invalid value %d for flag -backends: want 1..50", backends)
	}
	for _, name := range slices.Sorted(maps.Keys(addrs)) {
		host, port, err := net.SplitHostPort(addrs[name])
		if err == nil && (host == "" || port == "") {
			err = errors.New("want host:port, both given")
		}
		if err != nil {
			return fmt.Errorf("invalid value %q for flag -%s: %v", addrs[name], name, err)
		}
	}
	return nil
}

// digCommand is a dig command line asking the DNS server at addr for name's
// SRV records.
func digCommand(addr, name string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "dig SRV " + name // validate checked addr; not reached
	}
	return fmt.Sprintf("dig @%s -p %s +short SRV %s", host, port, name)
}

func run(ctx context.Context, bin string, n int, httpAddr, grpcAddr, dnsAddr string) error {
	dns, err := clusterdns.Start(dnsAddr, zone)
	if err != nil {
		return fmt.Errorf("DNS server: %w", err)
	}
	defer dns.Close()

	tmp, err := os.MkdirTemp("", "knowingnode-local-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)

	sup := &supervisor{exited: make(chan string, 2*n+2)}
	defer sup.stopAll()
	svc := clusterdns.Service{
		Namespace: namespace, Name: service, ClusterIP: "None",
		Ports: []clusterdns.Port{{Name: "grpc", Protocol: "tcp", Port: grpcPort}},
	}
	for i := range n {
		pod := fmt.Sprintf("%s-%d", service, i)
		ip := fmt.Sprintf("127.0.0.%d", 11+i) // a pod IP of its own: A records carry no port
		node, nodeIP := "node-a", "127.0.1.1"
		if i%2 == 1 {
			node, nodeIP = "node-b", "127.0.1.2"
		}
		dir := filepath.Join(tmp, pod)
		if err := writeDownwardVolume(dir, pod); err != nil {
			return err
		}
		cmd := exec.CommandContext(ctx, filepath.Join(bin, "backend"),
			"--grpc-addr", fmt.Sprintf("%s:%d", ip, grpcPort),
			"--admin-addr", ip+":9091",
			"--downward-dir", dir,
			"--drain-delay", "1s")
		cmd.Env = append(os.Environ(),
			"POD_NAME="+pod, "POD_NAMESPACE="+namespace, "POD_IP="+ip, "POD_IPS="+ip,
			fmt.Sprintf("POD_UID=00000000-0000-4000-8000-%012d", i),
			"NODE_NAME="+node, "NODE_IP="+nodeIP, "SERVICE_ACCOUNT=backend",
			"CPU_LIMIT=500", "MEMORY_LIMIT=134217728", "LOG_FORMAT=text")
		if err := sup.start(cmd, pod); err != nil {
			return err
		}
		svc.Endpoints = append(svc.Endpoints, clusterdns.Endpoint{IP: ip, Hostname: pod})
	}
	if err := dns.SetService(svc); err != nil {
		return err
	}

	fqdn := fmt.Sprintf("%s.%s.svc.cluster.local", service, namespace)
	targets := strings.Join([]string{
		fmt.Sprintf("dns=dns://%s/%s:%d", dnsAddr, fqdn, grpcPort),
		fmt.Sprintf("srv=srv://%s/_grpc._tcp.%s", dnsAddr, fqdn),
		fmt.Sprintf("statefulset=statefulset://%s/%s.%s:%d", dnsAddr, service, fqdn, grpcPort),
	}, " ")
	fe := exec.CommandContext(ctx, filepath.Join(bin, "frontend"),
		"--http-addr", httpAddr, "--grpc-addr", grpcAddr, "--downward-dir", "",
		"--refresh-interval", "2s", "--drain-delay", "0s")
	fe.Env = append(os.Environ(), "TARGETS="+targets,
		"POD_NAME=frontend-0", "POD_NAMESPACE="+namespace, "POD_IP=127.0.0.1", "POD_IPS=127.0.0.1",
		"POD_UID=00000000-0000-4000-8000-00000000f00d", "NODE_NAME=node-a",
		"NODE_IP=127.0.1.1", "SERVICE_ACCOUNT=frontend", "LOG_FORMAT=text")
	if err := sup.start(fe, "frontend"); err != nil {
		return err
	}

	if err := waitHTTP(ctx, "http://"+httpAddr+"/readyz"); err != nil {
		return err
	}
	grpcurl := "go tool -modfile=tools/tools.mod grpcurl -plaintext"
	fmt.Printf(`
knowingnode is up: %d backends on 2 fake nodes, DNS at %s, frontend at:

    http://%s/

Try:
    curl -s http://%s/v1/fanout | jq '.results[].identity | {podName, nodeName, podIp}'
    curl -s 'http://%s/v1/fanout?target=srv&mode=BALANCED&count=30' | jq .summary.byPod
    curl -s http://%s/v1/targets | jq
    %s %s knowingnode.v1.FanOutService/FanOut
    %s -d '{"target":"statefulset"}' %s knowingnode.v1.FanOutService/FanOut
    %s 127.0.0.11:9090 knowingnode.v1.IdentityService/GetIdentity
    %s

Ctrl-C stops everything.
`, n, dnsAddr, httpAddr, httpAddr, httpAddr, httpAddr, grpcurl, grpcAddr, grpcurl, grpcAddr, grpcurl,
		digCommand(dns.Addr(), "_grpc._tcp."+fqdn))

	// Run until Ctrl-C or a child dies on its own.
	select {
	case <-ctx.Done():
		fmt.Println("\nstopping...")
		return nil
	case name := <-sup.exited:
		return fmt.Errorf("%s exited unexpectedly; see its log lines above", name)
	}
}

// writeDownwardVolume writes files as the kubelet does for a downwardAPI
// volume with metadata.labels and metadata.annotations.
func writeDownwardVolume(dir, pod string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	labels := fmt.Sprintf("app.kubernetes.io/name=\"knowingnode\"\ncomponent=\"backend\"\nstatefulset.kubernetes.io/pod-name=%q\n", pod)
	annotations := "kubernetes.io/config.source=\"local\"\n"
	return errors.Join(
		os.WriteFile(filepath.Join(dir, "labels"), []byte(labels), 0o644),
		os.WriteFile(filepath.Join(dir, "annotations"), []byte(annotations), 0o644),
	)
}

// supervisor runs the children, prefixes their logs, and stops them.
type supervisor struct {
	outMu  sync.Mutex
	procs  []*child
	exited chan string
}

type child struct {
	cmd  *exec.Cmd
	done chan struct{}
}

// start runs cmd with its log lines prefixed by name. Children get SIGTERM
// (not SIGKILL) when the context ends, so they drain as pods do.
func (s *supervisor) start(cmd *exec.Cmd, name string) error {
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 15 * time.Second
	out, err := cmd.StderrPipe()
	if err != nil {
		return err
	}
	cmd.Stdout = os.Stdout
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w (run `make build` first?)", name, err)
	}
	p := &child{cmd: cmd, done: make(chan struct{})}
	s.procs = append(s.procs, p)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			s.outMu.Lock()
			fmt.Fprintf(os.Stderr, "%-10s | %s\n", name, sc.Text())
			s.outMu.Unlock()
		}
		cmd.Wait()
		close(p.done)
		s.exited <- name
	}()
	return nil
}

// stopAll sends SIGTERM to every child still running and waits for all.
func (s *supervisor) stopAll() {
	for _, p := range s.procs {
		select {
		case <-p.done:
		default:
			p.cmd.Process.Signal(syscall.SIGTERM)
		}
	}
	for _, p := range s.procs {
		<-p.done
	}
}

func waitHTTP(ctx context.Context, url string) error {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = errors.New(resp.Status)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("frontend not ready at %s: %w", url, err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}
