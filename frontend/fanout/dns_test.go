package fanout

import (
	"fmt"
	"testing"

	knowingnodev1 "github.com/knowingnode/knowingnode/gen/knowingnode/v1"
	"github.com/knowingnode/knowingnode/harness/clusterdns"
	"github.com/knowingnode/knowingnode/harness/loopbackpods"
	"github.com/knowingnode/knowingnode/internal/discovery"
)

func TestFanOutFollowsClusterDNS(t *testing.T) {
	ips, port := loopbackpods.Start(t, 5, 41, "web")
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
