package discovery_test

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"
	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	knowingnodev1 "github.com/knowingnode/knowingnode/gen/knowingnode/v1"
	"github.com/knowingnode/knowingnode/harness/clusterdns"
	"github.com/knowingnode/knowingnode/harness/loopbackpods"
	"github.com/knowingnode/knowingnode/harness/poll"
	"github.com/knowingnode/knowingnode/internal/discovery"
)

const roundRobin = `{"loadBalancingConfig":[{"round_robin":{}}]}`

// zone is a headless Service "web" in namespace ns whose 3 pods are real
// identity servers on 127.0.0.x, published by a real DNS server, and, for
// kubernetes:///, as an EndpointSlice of a fake API server.
type zone struct {
	dns  *clusterdns.Server
	svc  clusterdns.Service
	ips  []string
	port string
	kube *fake.Clientset
}

func startZone(t *testing.T, first int) *zone {
	t.Helper()
	ips, port := loopbackpods.Start(t, 3, first, "web")
	z := &zone{ips: ips, port: strconv.Itoa(int(port)), kube: fake.NewClientset()}
	var err error
	if z.dns, err = clusterdns.Start("127.0.0.1:0", "cluster.local."); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { z.dns.Close() })
	z.svc = clusterdns.Service{Namespace: "ns", Name: "web", ClusterIP: "None", Ports: []clusterdns.Port{{Name: "grpc", Port: port}}}
	for i, ip := range ips {
		z.svc.Endpoints = append(z.svc.Endpoints, clusterdns.Endpoint{IP: ip, Hostname: fmt.Sprintf("web-%d", i)})
	}
	if err := z.dns.SetService(z.svc); err != nil {
		t.Fatal(err)
	}
	es := &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Name: "web-x1", Namespace: "ns", Labels: map[string]string{discoveryv1.LabelServiceName: "web"}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Name: new("grpc"), Port: new(int32(port))}},
	}
	for _, ip := range ips {
		es.Endpoints = append(es.Endpoints, discoveryv1.Endpoint{Addresses: []string{ip}, Conditions: discoveryv1.EndpointConditions{Ready: new(true)}})
	}
	if _, err := z.kube.DiscoveryV1().EndpointSlices("ns").Create(t.Context(), es, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	return z
}

// targets spells the zone's Service in every scheme.
func (z *zone) targets() map[string]string {
	d := z.dns.Addr()
	var static []string
	for _, ip := range z.ips {
		static = append(static, net.JoinHostPort(ip, z.port))
	}
	return map[string]string{
		"dns":         "dns://" + d + "/web.ns.svc.cluster.local:" + z.port,
		"srv":         "srv://" + d + "/_grpc._tcp.web.ns.svc.cluster.local",
		"statefulset": "statefulset://" + d + "/web.web.ns.svc.cluster.local:" + z.port,
		"static":      "static:///" + strings.Join(static, ","),
		"kubernetes":  "kubernetes:///web.ns:grpc",
	}
}

// reached calls through cc until the pods that answered are want, and
// fails the test when they never are.
func reached(t *testing.T, cc *grpc.ClientConn, what string, want ...string) {
	t.Helper()
	client := knowingnodev1.NewIdentityServiceClient(cc)
	poll.T(t, 15*time.Second, what, func(ctx context.Context) error {
		seen := map[string]bool{}
		for range 30 {
			resp, err := client.GetIdentity(ctx, &knowingnodev1.GetIdentityRequest{})
			if err != nil {
				return err
			}
			seen[resp.GetIdentity().GetPodName()] = true
		}
		var got []string
		for p := range seen {
			got = append(got, p)
		}
		slices.Sort(got)
		if !slices.Equal(got, want) {
			return fmt.Errorf("30 calls reached %v, want %v", got, want)
		}
		return nil
	})
}

// TestGRPCResolvers: a gRPC client outside the frontend dials each scheme
// through grpc.NewClient with round_robin, and reaches every pod of the
// Service, as a real DNS server's zone (or the API server's EndpointSlices)
// lists them; the dynamic schemes follow a scale-down.
func TestGRPCResolvers(t *testing.T) {
	z := startZone(t, 40)
	builders := discovery.Builders(discovery.Options{Refresh: 200 * time.Millisecond, Kube: z.kube})
	all := []string{"web-0", "web-1", "web-2"}
	for _, scheme := range discovery.Schemes {
		t.Run(string(scheme), func(t *testing.T) {
			target := z.targets()[string(scheme)]
			cc, err := grpc.NewClient(target,
				grpc.WithResolvers(builders...),
				grpc.WithTransportCredentials(insecure.NewCredentials()),
				grpc.WithDefaultServiceConfig(roundRobin))
			if err != nil {
				t.Fatal(err)
			}
			defer cc.Close()
			reached(t, cc, target+" reaching every pod", all...)
		})
	}

	// A scale-down reaches every dynamic scheme's clients within a refresh
	// (kubernetes:/// at the watch's event).
	clients := map[string]*grpc.ClientConn{}
	for _, scheme := range []string{"dns", "srv", "statefulset", "kubernetes"} {
		cc, err := grpc.NewClient(z.targets()[scheme], grpc.WithResolvers(builders...),
			grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithDefaultServiceConfig(roundRobin))
		if err != nil {
			t.Fatal(err)
		}
		defer cc.Close()
		reached(t, cc, scheme+" before the scale-down", all...)
		clients[scheme] = cc
	}
	z.svc.Endpoints = z.svc.Endpoints[:2]
	if err := z.dns.SetService(z.svc); err != nil {
		t.Fatal(err)
	}
	es, err := z.kube.DiscoveryV1().EndpointSlices("ns").Get(t.Context(), "web-x1", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	es.Endpoints = es.Endpoints[:2]
	if _, err := z.kube.DiscoveryV1().EndpointSlices("ns").Update(t.Context(), es, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	for scheme, cc := range clients {
		reached(t, cc, scheme+" after the scale-down", "web-0", "web-1")
	}
}

// TestGRPCResolverErrors: a target that is no spec of its scheme fails the
// client's calls with the parse error; a DNS server that never answered
// fails them with the lookup's error.
func TestGRPCResolverErrors(t *testing.T) {
	builders := discovery.Builders(discovery.Options{Refresh: time.Hour, Timeout: time.Second})
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	down := pc.LocalAddr().String()
	pc.Close()
	for _, tc := range []struct{ target, want string }{
		{"srv:///_grpc._tcp.web.ns.svc.cluster.local:9090", "an SRV name takes no port"},
		{"statefulset:///web:9090", "want <statefulset>.<service domain>:<port>"},
		{"dns://" + down + "/web.ns.svc.cluster.local:9090", "connection refused"},
	} {
		cc, err := grpc.NewClient(tc.target, grpc.WithResolvers(builders...),
			grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithDefaultServiceConfig(roundRobin))
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		_, err = knowingnodev1.NewIdentityServiceClient(cc).GetIdentity(ctx, &knowingnodev1.GetIdentityRequest{}, grpc.WaitForReady(false))
		cancel()
		cc.Close()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: call error %v; want one saying %q", tc.target, err, tc.want)
		}
	}
}

// TestRegister: after Register, a plain grpc.NewClient("srv:///…") uses
// this package's resolver; dns stays gRPC's own.
func TestRegister(t *testing.T) {
	z := startZone(t, 50)
	discovery.Register(discovery.Options{Refresh: time.Second})
	cc, err := grpc.NewClient(z.targets()["srv"], grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithDefaultServiceConfig(roundRobin))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	reached(t, cc, "srv:/// through the global registry", "web-0", "web-1", "web-2")
}

// countingLookuper counts the DNS questions asked through it.
type countingLookuper struct {
	discovery.Lookuper
	n *atomic.Int64
}

func (l countingLookuper) LookupIPAddr(ctx context.Context, host string) ([]net.IPAddr, error) {
	l.n.Add(1)
	return l.Lookuper.LookupIPAddr(ctx, host)
}

func (l countingLookuper) LookupSRV(ctx context.Context, service, proto, name string) (string, []*net.SRV, error) {
	l.n.Add(1)
	return l.Lookuper.LookupSRV(ctx, service, proto, name)
}

// changes records what Options.OnChange saw, per target.
type changes struct {
	mu  sync.Mutex
	got map[string][]discovery.State
}

func (c *changes) on(target string, st discovery.State) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.got == nil {
		c.got = map[string][]discovery.State{}
	}
	c.got[target] = append(c.got[target], st)
}

// brief is each state's version, endpoints and error, for a test's message.
func brief(sts []discovery.State) string {
	var b []string
	for _, st := range sts {
		b = append(b, fmt.Sprintf("v%d: %d endpoints, error %v", st.Version, len(st.Endpoints), st.LastError))
	}
	return "[" + strings.Join(b, "; ") + "]"
}

func (c *changes) of(target string) []discovery.State {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.got[target])
}

// sliceCalls counts the fake API server's lists and watches of
// EndpointSlices.
func sliceCalls(kube *fake.Clientset) (lists, watches int) {
	for _, a := range kube.Actions() {
		if a.GetResource().Resource != "endpointslices" {
			continue
		}
		switch a.(type) {
		case k8stesting.ListAction:
			lists++
		case k8stesting.WatchAction:
			watches++
		}
	}
	return lists, watches
}

// TestGRPCResolversShareOneLoop: 8 clients dialing one target through one
// Builders share one discovery loop: one refresh's DNS questions (refreshed
// hourly, so only the first refresh runs), one EndpointSlice list and
// watch, one OnChange call. Once the last client closes, every goroutine
// the loops started is gone; a client dialing again starts a new loop.
func TestGRPCResolversShareOneLoop(t *testing.T) {
	const clients = 8
	z := startZone(t, 60)
	var lookups atomic.Int64
	var seen changes
	builders := discovery.Builders(discovery.Options{
		Refresh: time.Hour,
		Kube:    z.kube,
		Lookuper: func(server string) discovery.Lookuper {
			return countingLookuper{discovery.NetLookuper(server), &lookups}
		},
		OnChange: seen.on,
	})
	before := goleak.IgnoreCurrent()
	all := []string{"web-0", "web-1", "web-2"}
	dial := func(target string) *grpc.ClientConn {
		cc, err := grpc.NewClient(target, grpc.WithResolvers(builders...),
			grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithDefaultServiceConfig(roundRobin))
		if err != nil {
			t.Fatal(err)
		}
		return cc
	}
	// The questions of one refresh: the A of the name; the SRV, then the A
	// of each of its 3 pods.
	perRefresh := map[string]int64{"dns": 1, "srv": 4, "kubernetes": 0}
	for _, scheme := range []string{"dns", "srv", "kubernetes"} {
		target := z.targets()[scheme]
		lookups.Store(0)
		var ccs []*grpc.ClientConn
		for range clients {
			cc := dial(target)
			ccs = append(ccs, cc)
			reached(t, cc, fmt.Sprintf("%s client %d reaching every pod", scheme, len(ccs)), all...)
		}
		if n := lookups.Load(); n != perRefresh[scheme] {
			t.Errorf("%s: %d clients asked %d DNS questions; want %d, one refresh's", scheme, clients, n, perRefresh[scheme])
		}
		if scheme == "kubernetes" {
			if lists, watches := sliceCalls(z.kube); lists != 1 || watches != 1 {
				t.Errorf("kubernetes: %d clients made %d lists and %d watches of EndpointSlices; want 1 and 1", clients, lists, watches)
			}
		}
		if got := seen.of(target); len(got) != 1 || got[0].Version != 1 || len(got[0].Endpoints) != 3 {
			t.Errorf("%s: OnChange saw %d states %s; want one, v1 of the 3 pods", scheme, len(got), brief(got))
		}
		for _, cc := range ccs {
			cc.Close()
		}
	}
	// ClientConn.Close waits for its resolver's Close: the loops are gone.
	goleak.VerifyNone(t, before)

	// A new client after the last closed: a new loop, a new first answer.
	target := z.targets()["dns"]
	lookups.Store(0)
	cc := dial(target)
	reached(t, cc, "a client dialing again", all...)
	cc.Close()
	if n, got := lookups.Load(), seen.of(target); n != 1 || len(got) != 2 {
		t.Errorf("dialing again: %d DNS questions, %d OnChange calls in all; want 1 and 2 (a new loop)", n, len(got))
	}
	goleak.VerifyNone(t, before)
}

// TestGRPCResolverOnChange: OnChange sees what the clients are not given:
// an endpoint that stopped being ready (kubernetes:///), and the error of a
// failed refresh, the set kept; and it sees each change once however many
// clients follow the target. Clients that close leave the others' loop
// running: the last client follows a scale-down.
func TestGRPCResolverOnChange(t *testing.T) {
	z := startZone(t, 65)
	var seen changes
	builders := discovery.Builders(discovery.Options{Refresh: 200 * time.Millisecond, Timeout: time.Second, Kube: z.kube, OnChange: seen.on})
	dial := func(target string) *grpc.ClientConn {
		cc, err := grpc.NewClient(target, grpc.WithResolvers(builders...),
			grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithDefaultServiceConfig(roundRobin))
		if err != nil {
			t.Fatal(err)
		}
		return cc
	}
	all := []string{"web-0", "web-1", "web-2"}
	last := func(target string) discovery.State {
		got := seen.of(target)
		if len(got) == 0 {
			return discovery.State{}
		}
		return got[len(got)-1]
	}

	// kubernetes:///: web-2 stops being ready; the clients stop calling it,
	// OnChange still lists it, not ready.
	kt := z.targets()["kubernetes"]
	k1, k2 := dial(kt), dial(kt)
	defer k1.Close()
	defer k2.Close()
	reached(t, k1, "kubernetes:/// before web-2 is not ready", all...)
	reached(t, k2, "kubernetes:/// (second client) before web-2 is not ready", all...)
	es, err := z.kube.DiscoveryV1().EndpointSlices("ns").Get(t.Context(), "web-x1", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	es.Endpoints[2].Conditions = discoveryv1.EndpointConditions{Ready: new(false), Serving: new(true), Terminating: new(true)}
	if _, err := z.kube.DiscoveryV1().EndpointSlices("ns").Update(t.Context(), es, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	reached(t, k1, "kubernetes:/// after web-2 is not ready", "web-0", "web-1")
	reached(t, k2, "kubernetes:/// (second client) after web-2 is not ready", "web-0", "web-1")
	got := seen.of(kt)
	if len(got) != 2 {
		t.Fatalf("OnChange saw %d states of %s %s; want 2 (the first list, web-2 not ready), once for both clients", len(got), kt, brief(got))
	}
	if eps := got[1].Endpoints; len(eps) != 3 || eps[2].Slice.Ready || !eps[2].Slice.Terminating || got[1].Version != 2 {
		t.Errorf("the second state: version %d, %+v; want version 2 and 3 endpoints, the third not ready, terminating", got[1].Version, eps)
	}

	// dns: 4 clients, 3 close; a refresh fails (the set kept, the error
	// seen), then the Service loses web-2, and the last client follows.
	dt := z.targets()["dns"]
	var ccs []*grpc.ClientConn
	for range 4 {
		cc := dial(dt)
		reached(t, cc, "dns before the scale-down", all...)
		ccs = append(ccs, cc)
	}
	for _, cc := range ccs[1:] {
		cc.Close()
	}
	kept := ccs[0]
	defer kept.Close()
	z.dns.SetFailure(dns.RcodeServerFailure)
	poll.T(t, 10*time.Second, "OnChange seeing the failed refresh", func(context.Context) error {
		if st := last(dt); st.LastError == nil || len(st.Endpoints) != 3 {
			return fmt.Errorf("last state: error %v, %d endpoints; want an error, the 3 kept", st.LastError, len(st.Endpoints))
		}
		return nil
	})
	reached(t, kept, "dns through the failure", all...)
	z.dns.SetFailure(dns.RcodeSuccess)
	z.svc.Endpoints = z.svc.Endpoints[:2]
	if err := z.dns.SetService(z.svc); err != nil {
		t.Fatal(err)
	}
	reached(t, kept, "dns after 3 of 4 clients closed and the scale-down", "web-0", "web-1")
	if st := last(dt); st.LastError != nil || len(st.Endpoints) != 2 {
		t.Errorf("last state of %s: error %v, %d endpoints; want none, 2", dt, st.LastError, len(st.Endpoints))
	}
}
