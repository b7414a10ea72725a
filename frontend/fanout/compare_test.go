package fanout

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	knowingnodev1 "github.com/knowingnode/knowingnode/gen/knowingnode/v1"
	"github.com/knowingnode/knowingnode/harness/clusterdns"
	"github.com/knowingnode/knowingnode/internal/discovery"
)

// TestDNSBesideEndpointSlices: a DNS target and a kubernetes:/// target of
// one Service carry the same comparison, in ListTargets and in the watch,
// and a DNS change re-sends both. DNS is a real DNS server; the API server
// is client-go's fake clientset behind the real informer.
func TestDNSBesideEndpointSlices(t *testing.T) {
	dns, err := clusterdns.Start("127.0.0.1:0", "cluster.local.")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dns.Close() })
	setDNS := func(ips ...string) {
		var eps []clusterdns.Endpoint
		for _, ip := range ips {
			eps = append(eps, clusterdns.Endpoint{IP: ip})
		}
		if err := dns.SetService(clusterdns.Service{Namespace: "ns", Name: "web", ClusterIP: "None", Endpoints: eps}); err != nil {
			t.Fatal(err)
		}
	}
	setDNS("10.244.0.10", "10.244.0.11")
	// The fake clientset answers no streaming list (client-go's WatchListClient
	// default): the informer lists and watches as against older servers.
	t.Setenv("KUBE_FEATURE_WatchListClient", "false")
	yes, no := true, false
	port, name := int32(9090), "grpc"
	client := fake.NewClientset(&discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Name: "web-abc", Namespace: "ns", Labels: map[string]string{discoveryv1.LabelServiceName: "web"}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Name: &name, Port: &port}},
		Endpoints: []discoveryv1.Endpoint{
			{Addresses: []string{"10.244.0.10"}, Conditions: discoveryv1.EndpointConditions{Ready: &yes}},
			{Addresses: []string{"10.244.0.11"}, Conditions: discoveryv1.EndpointConditions{Ready: &yes}},
			{Addresses: []string{"10.244.0.12"}, Conditions: discoveryv1.EndpointConditions{Ready: &no}},
			{Addresses: []string{"10.244.0.13"}, Conditions: discoveryv1.EndpointConditions{Ready: &no, Terminating: &yes}},
		},
	})

	s := New(&knowingnodev1.Identity{PodName: "frontend-0"}, Options{BackendTimeout: time.Second, DefaultTimeout: time.Second, Concurrency: 4})
	t.Cleanup(func() { s.Close(context.Background()) })
	targets := map[string]*discovery.Target{}
	for _, raw := range []string{
		"web-dns=dns://" + dns.Addr() + "/web.ns.svc.cluster.local:9090",
		"web-api=kubernetes:///web.ns:grpc",
		"other=dns://" + dns.Addr() + "/web.other.svc.cluster.local:9090", // another namespace: no comparison
	} {
		spec, err := discovery.ParseTarget(raw)
		if err != nil {
			t.Fatal(err)
		}
		var src discovery.Source = discovery.NewResolver(discovery.NetLookuper(spec.Server))
		if spec.QType == discovery.Kubernetes {
			w, err := discovery.NewKubernetesWatcher(client, spec, nil)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(w.Close)
			src = w
		}
		pool, err := NewPool(spec.Name, time.Second, slog.New(slog.DiscardHandler), grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(pool.Close)
		target := discovery.NewTarget(spec, src, discovery.TargetOptions{Interval: time.Hour, Timeout: 10 * time.Second, OnUpdate: pool.Update})
		target.Refresh(t.Context())
		targets[spec.Name] = target
		if err := s.Add(target, pool); err != nil {
			t.Fatal(err)
		}
	}
	const want = "DNS: 2 addresses; API: 4 endpoints, 1 not ready, 1 terminating; DNS answers exactly the ready endpoints; only in the API: 10.244.0.12 (not ready), 10.244.0.13 (terminating)"
	list, err := s.ListTargets(t.Context(), &knowingnodev1.ListTargetsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	for _, ts := range list.Targets {
		c := ts.GetCompare()
		switch ts.Name {
		case "other":
			if len(c) != 0 {
				t.Errorf("other: compared %v; want nothing (another namespace)", c)
			}
		case "web-dns", "web-api":
			other := map[string]string{"web-dns": "web-api", "web-api": "web-dns"}[ts.Name]
			if len(c) != 1 || c[0].Other != other || c[0].Summary != want || !c[0].Agree || len(c[0].OnlyApi) != 2 {
				t.Errorf("%s: compared %v; want against %s: %q", ts.Name, c, other, want)
			}
		}
	}

	c := serveFanOut(t, s)
	stream, err := c.WatchTargets(t.Context(), &knowingnodev1.WatchTargetsRequest{Target: "web-api"})
	if err != nil {
		t.Fatal(err)
	}
	if m, err := stream.Recv(); err != nil || m.Target.GetCompare()[0].GetSummary() != want {
		t.Fatalf("first watch message: %v %v", m, err)
	}
	// DNS starts answering the not-ready pod (publishNotReadyAddresses):
	// the watch of the API target sends it again, with the new comparison.
	setDNS("10.244.0.10", "10.244.0.11", "10.244.0.12")
	targets["web-dns"].Refresh(t.Context())
	m, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	got := m.Target.GetCompare()[0]
	if got.Agree || !strings.Contains(got.Summary, "in DNS though not ready: 10.244.0.12") || m.Target.GetName() != "web-api" {
		t.Errorf("after DNS changed, the API target's comparison: %v; want the not-ready pod in DNS named", got)
	}
}
