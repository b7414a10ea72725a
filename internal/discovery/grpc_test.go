package discovery_test

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

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
