package fanout

import (
	"fmt"
	"net"
	"testing"

	"google.golang.org/grpc"

	"github.com/knowingnode/knowingnode/frontend/discovery"
	knowingnodev1 "github.com/knowingnode/knowingnode/gen/knowingnode/v1"
	"github.com/knowingnode/knowingnode/internal/identity"
	"github.com/knowingnode/knowingnode/internal/testing/clusterdns"
)

// podBackends starts n backends as pods are: each on an IP of its own
// (127.0.0.x), all on one port, since A records carry no port.
func podBackends(t *testing.T, n int) (ips []string, port uint16) {
	t.Helper()
	for attempt := 0; attempt < 20; attempt++ {
		first, err := net.Listen("tcp", "127.0.0.41:0")
		if err != nil {
			t.Fatal(err)
		}
		port = uint16(first.Addr().(*net.TCPAddr).Port)
		lis := []net.Listener{first}
		for i := 1; i < n; i++ {
			l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.%d:%d", 41+i, port))
			if err != nil {
				break // that port is taken on this IP: try another
			}
			lis = append(lis, l)
		}
		if len(lis) < n {
			for _, l := range lis {
				l.Close()
			}
			continue
		}
		for i, l := range lis {
			srv := grpc.NewServer()
			knowingnodev1.RegisterIdentityServiceServer(srv, identity.NewServer(&knowingnodev1.Identity{
				PodName: fmt.Sprintf("web-%d", i), NodeName: fmt.Sprintf("node-%c", 'a'+i%2),
			}))
			go srv.Serve(l)
			t.Cleanup(srv.Stop)
			ips = append(ips, fmt.Sprintf("127.0.0.%d", 41+i))
		}
		return ips, port
	}
	t.Fatal("no port free on every loopback IP")
	return nil, 0
}

func TestFanOutFollowsClusterDNS(t *testing.T) {
	ips, port := podBackends(t, 5)
	dns, err := clusterdns.Start("127.0.0.1:0", "cluster.local.")
	if err != nil {
		t.Fatal(err)
	}
	defer dns.Close()
	scale := func(n int) {
		svc := clusterdns.Service{Namespace: "ns", Name: "web", ClusterIP: "None",
			Ports: []clusterdns.Port{{Name: "grpc", Protocol: "tcp", Port: port}}}
		for i := range n {
			svc.Endpoints = append(svc.Endpoints, clusterdns.Endpoint{IP: ips[i], Hostname: fmt.Sprintf("web-%d", i)})
		}
		if err := dns.SetService(svc); err != nil {
			t.Fatal(err)
		}
	}
	for _, mode := range []string{
		fmt.Sprintf("dns://%s/web.ns.svc.cluster.local:%d", dns.Addr(), port),
		fmt.Sprintf("srv://%s/_grpc._tcp.web.ns.svc.cluster.local", dns.Addr()),
		fmt.Sprintf("statefulset://%s/web.web.ns.svc.cluster.local:%d", dns.Addr(), port),
	} {
		t.Run(mode[:3], func(t *testing.T) {
			scale(3)
			spec, err := discovery.ParseTarget("web=" + mode)
			if err != nil {
				t.Fatal(err)
			}
			s, target := newServiceSpec(t, Options{}, spec)
			// Each step is one refresh: what DNS says after a change shows in
			// the next fan-out, within one refresh interval.
			for _, n := range []int{3, 5, 2} {
				scale(n)
				if err := target.Refresh(t.Context()); err != nil {
					t.Fatal(err)
				}
				resp, err := s.FanOut(t.Context(), &knowingnodev1.FanOutRequest{})
				if err != nil {
					t.Fatal(err)
				}
				got := map[string]bool{}
				for _, r := range resp.Results {
					if r.Code != "OK" {
						t.Errorf("scaled to %d: %s answered %s", n, r.Address, r.Code)
						continue
					}
					got[r.Identity.PodName] = true
				}
				for i := range 5 {
					if want := i < n; got[fmt.Sprintf("web-%d", i)] != want {
						t.Errorf("scaled to %d: web-%d in results = %v, want %v (got %v)", n, i, !want, want, got)
					}
				}
			}

			// BALANCED over the discovered headless set spreads within ±20%.
			scale(3)
			target.Refresh(t.Context())
			waitReady(t, s.targets["web"].pool)
			resp, err := s.FanOut(t.Context(), &knowingnodev1.FanOutRequest{Mode: knowingnodev1.FanOutMode_FAN_OUT_MODE_BALANCED, Count: 300})
			if err != nil {
				t.Fatal(err)
			}
			for pod, calls := range resp.Summary.ByPod {
				if calls < 80 || calls > 120 {
					t.Errorf("BALANCED: %s got %d of 300 calls, want 100±20 (%v)", pod, calls, resp.Summary.ByPod)
				}
			}
			if len(resp.Summary.ByPod) != 3 {
				t.Errorf("BALANCED reached %v, want 3 pods", resp.Summary.ByPod)
			}
		})
	}
}
