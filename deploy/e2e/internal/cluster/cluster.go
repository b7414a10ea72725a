// Package cluster runs a real Kubernetes control plane on loopback for the
// deploy/ tests: etcd, kube-apiserver, kube-controller-manager and
// kube-scheduler as built from the module proxy, kwok faking the nodes
// (pods get IPs from a pod CIDR and turn Running/Ready), and CoreDNS with its
// kubernetes plugin answering cluster DNS. No containers, no root needed.
package cluster

import (
	"github.com/knowingnode/knowingnode/harness/poll"
	"github.com/knowingnode/knowingnode/harness/proc"

	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"k8s.io/client-go/util/retry"
)

// Config says where the binaries are and how big a cluster to start.
type Config struct {
	// BinDir holds etcd, kube-apiserver, kube-controller-manager,
	// kube-scheduler, kubectl, kwok and coredns.
	BinDir string
	// StagesDir holds kwok's stage configs (node-initialize.yaml, ...).
	StagesDir string
	// Nodes is the number of fake nodes (kwok), named node-0..node-N-1 with
	// InternalIPs 10.0.0.1...
	Nodes int
	// PodCIDR is where kwok takes pod IPs from. Not 127/8: EndpointSlices
	// skip loopback addresses.
	PodCIDR string
	// ServiceCIDR is the ClusterIP range.
	ServiceCIDR string
	// Logf receives progress lines.
	Logf func(format string, args ...any)
	// APIOnly starts etcd and kube-apiserver alone: no controllers,
	// scheduler, nodes or DNS. For a test that needs only the API (its own
	// objects, watches) and may hurt it, e.g. stop kube-apiserver: in a
	// second control plane of its own, that outage cannot reach the shared
	// one's kwok, controllers and their watches.
	APIOnly bool
}

// Cluster is a running control plane.
type Cluster struct {
	Dir        string // work dir: certs, data, logs/<component>.log
	Kubeconfig string
	DNSAddr    string // CoreDNS, host:port on 127.0.0.1
	Client     kubernetes.Interface
	REST       *rest.Config
	Nodes      []string
	// Phases records how long each start-up phase took.
	Phases []Phase

	cfg     Config
	procs   []*proc.Process
	etcdURL string
}

// Phase is one timed step of Start.
type Phase struct {
	Name string
	Took time.Duration
}

// Start brings the control plane up; on error everything already started is
// stopped again. The caller must call Stop.
func Start(ctx context.Context, cfg Config) (c *Cluster, err error) {
	if cfg.Nodes == 0 {
		cfg.Nodes = 3
	}
	if cfg.PodCIDR == "" {
		cfg.PodCIDR = "10.244.0.0/16"
	}
	if cfg.ServiceCIDR == "" {
		cfg.ServiceCIDR = "10.96.0.0/16"
	}
	if cfg.Logf == nil {
		cfg.Logf = func(string, ...any) {}
	}
	bins := []string{"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl", "kwok", "coredns"}
	if cfg.APIOnly {
		bins = bins[:2]
	}
	for _, b := range bins {
		if _, err := os.Stat(filepath.Join(cfg.BinDir, b)); err != nil {
			return nil, fmt.Errorf("cluster: binary %s: %w", b, err)
		}
	}
	removeStale(24 * time.Hour)
	dir, err := os.MkdirTemp("", workDirPrefix)
	if err != nil {
		return nil, fmt.Errorf("cluster: work dir: %w", err)
	}
	c = &Cluster{Dir: dir, cfg: cfg}
	defer func() {
		if err != nil {
			err = fmt.Errorf("cluster: %w (logs in %s)", err, filepath.Join(dir, "logs"))
			_ = c.stopProcs()
		}
	}()
	steps := []struct {
		name string
		fn   func(context.Context) error
	}{
		{"credentials", c.credentials},
		{"etcd", c.startEtcd},
		{"kube-apiserver", c.startAPIServer},
		{"controllers+scheduler", c.startControllers},
		{"nodes", c.startNodes},
		{"coredns", c.startCoreDNS},
		{"ready", c.waitReady},
	}
	if cfg.APIOnly {
		steps = steps[:3]
	}
	for _, s := range steps {
		t0 := time.Now()
		// The daemons take their ports as flags and cannot report one the
		// kernel chose, so a port picked free may be taken before they bind
		// it: such a step is tried again with new ports.
		for attempt := 1; ; attempt++ {
			err := s.fn(ctx)
			if err == nil {
				break
			}
			if attempt == 3 || !strings.Contains(err.Error(), "address already in use") {
				return c, fmt.Errorf("%s: %w", s.name, err)
			}
			cfg.Logf("cluster: %s: a port was taken before it bound it; again with new ports", s.name)
			c.dropExited()
		}
		c.Phases = append(c.Phases, Phase{s.name, time.Since(t0)})
		cfg.Logf("cluster: %s up in %s", s.name, time.Since(t0).Round(time.Millisecond))
	}
	return c, nil
}

const workDirPrefix = "knowingnode-e2e-"

// removeStale deletes work dirs that earlier runs left behind: a run killed
// outright (its processes die with it) or one that kept its logs after a
// failure. A day is long enough to read them.
func removeStale(age time.Duration) {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), workDirPrefix+"*"))
	for _, d := range dirs {
		if fi, err := os.Stat(d); err == nil && fi.IsDir() && time.Since(fi.ModTime()) > age {
			_ = os.RemoveAll(d)
		}
	}
}

// Stop ends every process (SIGTERM, then SIGKILL) in reverse start order.
// It removes the work dir unless keep is set, e.g. to read logs after a
// failure.
func (c *Cluster) Stop(keep bool) error {
	err := c.stopProcs()
	if !keep {
		if rmErr := os.RemoveAll(c.Dir); rmErr != nil {
			err = errors.Join(err, rmErr)
		}
	}
	return err
}

func (c *Cluster) stopProcs() error {
	var errs []error
	for i := len(c.procs) - 1; i >= 0; i-- {
		if err := c.procs[i].Terminate(5 * time.Second); err != nil {
			errs = append(errs, err)
		}
	}
	c.procs = nil
	return errors.Join(errs...)
}

// Kubectl runs the pinned kubectl against the cluster.
func (c *Cluster) Kubectl(ctx context.Context, args ...string) (stdout, stderr string, err error) {
	cmd := exec.CommandContext(ctx, filepath.Join(c.cfg.BinDir, "kubectl"), append([]string{"--kubeconfig", c.Kubeconfig}, args...)...)
	var o, e strings.Builder
	cmd.Stdout, cmd.Stderr = &o, &e
	err = cmd.Run()
	if err != nil {
		err = fmt.Errorf("kubectl %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(e.String()))
	}
	return o.String(), e.String(), err
}

// run starts one control-plane process, logging to its own file.
func (c *Cluster) run(name, bin string, args ...string) (*proc.Process, error) {
	p, err := proc.Launch(name, filepath.Join(c.cfg.BinDir, bin),
		proc.Options{Dir: c.Dir, Inherit: true, LogFile: filepath.Join(c.Dir, "logs", name+".log")}, args...)
	if err != nil {
		return nil, err
	}
	c.procs = append(c.procs, p)
	return p, nil
}

// poll calls fn until it succeeds, ctx ends, or a process of the cluster
// dies (then its log tail is in the error).
func (c *Cluster) poll(ctx context.Context, timeout time.Duration, fn func(context.Context) error) error {
	var died error
	err := poll.Until(ctx, timeout, poll.Every, "the cluster", func(ctx context.Context) error {
		if err := fn(ctx); err == nil {
			return nil
		} else if died = c.died(); died != nil {
			return nil
		} else {
			return err
		}
	})
	return errors.Join(died, err)
}

// dropExited forgets the processes that have exited.
func (c *Cluster) dropExited() {
	c.procs = slices.DeleteFunc(c.procs, func(p *proc.Process) bool { return p.Err() != nil })
}

// died reports the first process of the cluster that has exited.
func (c *Cluster) died() error {
	for _, p := range c.procs {
		if err := p.Err(); err != nil {
			return err
		}
	}
	return nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func freePorts(n int) ([]int, error) {
	// Hold all listeners until every port is picked, so none repeats.
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// credentials writes the service-account signing key, a static admin token
// and the kubeconfig everything uses.
func (c *Cluster) credentials(context.Context) error {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return err
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	pubDER, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		return err
	}
	tok := make([]byte, 16)
	if _, err := rand.Read(tok); err != nil {
		return err
	}
	token := hex.EncodeToString(tok)
	files := map[string][]byte{
		"sa.key":     pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}),
		"sa.pub":     pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER}),
		"tokens.csv": []byte(token + ",admin,admin,system:masters\n"),
	}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(c.Dir, name), b, 0o600); err != nil {
			return err
		}
	}
	port, err := freePort()
	if err != nil {
		return err
	}
	c.REST = &rest.Config{
		Host:            fmt.Sprintf("https://127.0.0.1:%d", port),
		BearerToken:     token,
		TLSClientConfig: rest.TLSClientConfig{Insecure: true},
		QPS:             100,
		Burst:           200,
	}
	kc := clientcmdapi.NewConfig()
	kc.Clusters["e2e"] = &clientcmdapi.Cluster{Server: c.REST.Host, InsecureSkipTLSVerify: true}
	kc.AuthInfos["admin"] = &clientcmdapi.AuthInfo{Token: token}
	kc.Contexts["e2e"] = &clientcmdapi.Context{Cluster: "e2e", AuthInfo: "admin"}
	kc.CurrentContext = "e2e"
	c.Kubeconfig = filepath.Join(c.Dir, "kubeconfig")
	if err := clientcmd.WriteToFile(*kc, c.Kubeconfig); err != nil {
		return err
	}
	c.Client, err = kubernetes.NewForConfig(c.REST)
	return err
}

func (c *Cluster) startEtcd(ctx context.Context) error {
	ports, err := freePorts(2)
	if err != nil {
		return err
	}
	client := fmt.Sprintf("http://127.0.0.1:%d", ports[0])
	peer := fmt.Sprintf("http://127.0.0.1:%d", ports[1])
	if _, err := c.run("etcd", "etcd",
		"--name=e2e", "--data-dir="+filepath.Join(c.Dir, "etcd"),
		"--listen-client-urls="+client, "--advertise-client-urls="+client,
		"--listen-peer-urls="+peer, "--initial-advertise-peer-urls="+peer,
		"--initial-cluster=e2e="+peer,
		// A throw-away test store: durability is not worth the fsyncs.
		"--unsafe-no-fsync", "--log-level=warn",
	); err != nil {
		return err
	}
	c.etcdURL = client
	return c.poll(ctx, 30*time.Second, func(ctx context.Context) error {
		return httpOK(ctx, nil, client+"/health")
	})
}

func (c *Cluster) startAPIServer(ctx context.Context) error {
	u := strings.TrimPrefix(c.REST.Host, "https://127.0.0.1:")
	if _, err := c.run("kube-apiserver", "kube-apiserver",
		"--bind-address=127.0.0.1", "--advertise-address=127.0.0.1", "--secure-port="+u,
		"--etcd-servers="+c.etcdURL,
		"--cert-dir="+filepath.Join(c.Dir, "pki"),
		"--token-auth-file="+filepath.Join(c.Dir, "tokens.csv"),
		"--authorization-mode=Node,RBAC",
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file="+filepath.Join(c.Dir, "sa.pub"),
		"--service-account-signing-key-file="+filepath.Join(c.Dir, "sa.key"),
		"--service-cluster-ip-range="+c.cfg.ServiceCIDR,
		"--service-node-port-range=30000-32767",
		// No kubelets or real endpoints for the kubernetes Service.
		"--endpoint-reconciler-type=none",
		"--profiling=false",
	); err != nil {
		return err
	}
	return c.poll(ctx, 60*time.Second, func(ctx context.Context) error {
		return httpOK(ctx, c.REST, c.REST.Host+"/readyz")
	})
}

func (c *Cluster) startControllers(ctx context.Context) error {
	if _, err := c.run("kube-controller-manager", "kube-controller-manager",
		"--kubeconfig="+c.Kubeconfig, "--leader-elect=false", "--secure-port=0",
		"--service-account-private-key-file="+filepath.Join(c.Dir, "sa.key"),
		"--use-service-account-credentials=false",
		// The HPA controller first looks at a new HPA one sync period after
		// it appears (rate-limited queue): short, so tests see its verdict.
		// Without a metrics server it only checks the scale target.
		"--horizontal-pod-autoscaler-sync-period=2s",
	); err != nil {
		return err
	}
	if _, err := c.run("kube-scheduler", "kube-scheduler",
		"--kubeconfig="+c.Kubeconfig, "--leader-elect=false", "--secure-port=0",
	); err != nil {
		return err
	}
	// The service-account controller creating "default" in "default" shows
	// the controller-manager works; pods need it in their namespace.
	return c.poll(ctx, 60*time.Second, func(ctx context.Context) error {
		_, err := c.Client.CoreV1().ServiceAccounts("default").Get(ctx, "default", metav1.GetOptions{})
		return err
	})
}

// fakeNode marks nodes for kwok to manage.
const fakeNode = "kwok.x-k8s.io/node"

// zoneOf is the zone of node-<i>: zone-a for even i, zone-b for odd.
func zoneOf(i int) string { return "zone-" + string(rune('a'+i%2)) }

// createNode registers node-<i> for kwok, with InternalIP 10.0.0.<i+1>.
func (c *Cluster) createNode(ctx context.Context, i int) error {
	name := fmt.Sprintf("node-%d", i)
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{
		Name:        name,
		Annotations: map[string]string{fakeNode: "fake"},
		Labels: map[string]string{
			corev1.LabelHostname:   name,
			corev1.LabelOSStable:   "linux",
			corev1.LabelArchStable: "amd64",
			"type":                 "kwok",
			// Two zones in one region, alternating, as a cloud's nodes
			// carry them: the PodTopologyLabels admission copies them
			// onto each pod bound to the node.
			corev1.LabelTopologyZone:   zoneOf(i),
			corev1.LabelTopologyRegion: "region-1",
		},
	}}
	if _, err := c.Client.CoreV1().Nodes().Create(ctx, n, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("create node %s: %w", name, err)
	}
	// Distinct node IPs (kwok keeps addresses it finds): the DaemonSet's
	// hostIP differs per node, as on a real cluster. The node controller
	// may have touched the node since: retry on conflict.
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		n, err := c.Client.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		n.Status.Addresses = []corev1.NodeAddress{
			{Type: corev1.NodeInternalIP, Address: fmt.Sprintf("10.0.0.%d", i+1)},
			{Type: corev1.NodeHostName, Address: name},
		}
		n.Status.Capacity = corev1.ResourceList{"cpu": mustQ("8"), "memory": mustQ("16Gi"), "pods": mustQ("110")}
		n.Status.Allocatable = n.Status.Capacity
		_, err = c.Client.CoreV1().Nodes().UpdateStatus(ctx, n, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		return fmt.Errorf("node %s status: %w", name, err)
	}
	c.Nodes = append(c.Nodes, name)
	return nil
}

// AddNode adds one more fake node and waits until it is Ready; it returns
// its name.
func (c *Cluster) AddNode(ctx context.Context) (string, error) {
	if err := c.createNode(ctx, len(c.Nodes)); err != nil {
		return "", err
	}
	name := c.Nodes[len(c.Nodes)-1]
	err := c.poll(ctx, 30*time.Second, func(ctx context.Context) error {
		n, err := c.Client.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		for _, cond := range n.Status.Conditions {
			if cond.Type == corev1.NodeReady && cond.Status == corev1.ConditionTrue {
				return nil
			}
		}
		return fmt.Errorf("node %s not Ready", name)
	})
	return name, err
}

// RemoveNode drains the last node the way a node going away does for a
// DaemonSet: a NoExecute taint evicts its pods (DaemonSet pods tolerate only
// the node-condition taints), then the Node is deleted.
func (c *Cluster) RemoveNode(ctx context.Context, name string) error {
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		n, err := c.Client.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		n.Spec.Taints = append(n.Spec.Taints, corev1.Taint{Key: "knowingnode.io/e2e-gone", Effect: corev1.TaintEffectNoExecute})
		_, err = c.Client.CoreV1().Nodes().Update(ctx, n, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		return fmt.Errorf("taint node %s: %w", name, err)
	}
	err = c.poll(ctx, 60*time.Second, func(ctx context.Context) error {
		pods, err := c.Client.CoreV1().Pods("").List(ctx, metav1.ListOptions{FieldSelector: "spec.nodeName=" + name})
		if err != nil {
			return err
		}
		if len(pods.Items) > 0 {
			return fmt.Errorf("%d pods still on node %s", len(pods.Items), name)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if err := c.Client.CoreV1().Nodes().Delete(ctx, name, metav1.DeleteOptions{}); err != nil {
		return fmt.Errorf("delete node %s: %w", name, err)
	}
	c.Nodes = slices.DeleteFunc(c.Nodes, func(n string) bool { return n == name })
	return nil
}

func (c *Cluster) startNodes(ctx context.Context) error {
	for i := range c.cfg.Nodes {
		if err := c.createNode(ctx, i); err != nil {
			return err
		}
	}
	var cfgs []string
	for _, s := range []string{"node-initialize", "node-heartbeat-with-lease", "pod-ready", "pod-complete", "pod-delete"} {
		cfgs = append(cfgs, "--config="+filepath.Join(c.cfg.StagesDir, s+".yaml"))
	}
	port, err := freePort()
	if err != nil {
		return err
	}
	args := append([]string{
		"--kubeconfig=" + c.Kubeconfig,
		"--manage-all-nodes=false",
		"--manage-nodes-with-annotation-selector=" + fakeNode + "=fake",
		"--cidr=" + c.cfg.PodCIDR,
		"--node-ip=10.0.0.254",
		// With --config the lease defaults to 0 and nodes turn NotReady.
		"--node-lease-duration-seconds=40",
		fmt.Sprintf("--server-address=127.0.0.1:%d", port),
	}, cfgs...)
	if _, err := c.run("kwok", "kwok", args...); err != nil {
		return err
	}
	return c.poll(ctx, 60*time.Second, func(ctx context.Context) error {
		nodes, err := c.Client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
		if err != nil {
			return err
		}
		ready := 0
		for _, n := range nodes.Items {
			for _, cond := range n.Status.Conditions {
				if cond.Type == corev1.NodeReady && cond.Status == corev1.ConditionTrue {
					ready++
				}
			}
		}
		if ready != c.cfg.Nodes {
			return fmt.Errorf("%d of %d nodes Ready", ready, c.cfg.Nodes)
		}
		return nil
	})
}

func (c *Cluster) startCoreDNS(ctx context.Context) error {
	ports, err := freePorts(2)
	if err != nil {
		return err
	}
	c.DNSAddr = fmt.Sprintf("127.0.0.1:%d", ports[0])
	ready := fmt.Sprintf("127.0.0.1:%d", ports[1])
	// ttl 5 is the plugin's default, said out loud: the frontend's refresh
	// interval (5s) plus this TTL bounds how stale discovery can be.
	corefile := fmt.Sprintf(`.:%d {
    bind 127.0.0.1
    errors
    ready %s
    kubernetes cluster.local in-addr.arpa ip6.arpa {
        kubeconfig %s e2e
        pods insecure
        ttl 5
    }
}
`, ports[0], ready, c.Kubeconfig)
	path := filepath.Join(c.Dir, "Corefile")
	if err := os.WriteFile(path, []byte(corefile), 0o644); err != nil {
		return err
	}
	if _, err := c.run("coredns", "coredns", "-conf", path); err != nil {
		return err
	}
	return c.poll(ctx, 30*time.Second, func(ctx context.Context) error {
		return httpOK(ctx, nil, "http://"+ready+"/ready")
	})
}

// waitReady waits for what every test needs: the default ServiceAccount
// (pods are refused without it) is created per namespace later, so here only
// the scheduler's and controllers' health is left: a throw-away pod must get
// scheduled, an IP and Ready.
func (c *Cluster) waitReady(ctx context.Context) error {
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "smoke", Namespace: "default"},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "smoke", Image: "smoke"}}},
	}
	if _, err := c.Client.CoreV1().Pods("default").Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		return err
	}
	err := c.poll(ctx, 60*time.Second, func(ctx context.Context) error {
		p, err := c.Client.CoreV1().Pods("default").Get(ctx, "smoke", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if p.Spec.NodeName == "" || p.Status.PodIP == "" || p.Status.Phase != corev1.PodRunning {
			return fmt.Errorf("smoke pod: node %q ip %q phase %s", p.Spec.NodeName, p.Status.PodIP, p.Status.Phase)
		}
		return nil
	})
	if err != nil {
		return err
	}
	zero := int64(0)
	return c.Client.CoreV1().Pods("default").Delete(ctx, "smoke", metav1.DeleteOptions{GracePeriodSeconds: &zero})
}

func httpOK(ctx context.Context, cfg *rest.Config, url string) error {
	client := &http.Client{Timeout: 2 * time.Second}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	if cfg != nil {
		rt, err := rest.TransportFor(cfg)
		if err != nil {
			return err
		}
		client.Transport = rt
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s: %s", url, resp.Status, body)
	}
	return nil
}

func mustQ(s string) resource.Quantity { return resource.MustParse(s) }
