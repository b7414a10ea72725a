package discovery

import (
	"context"
	"errors"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/knowingnode/knowingnode/harness/clusterdns"
)

// startDNS serves cluster.local. from a real DNS server on loopback.
func startDNS(t *testing.T, svcs ...clusterdns.Service) *clusterdns.Server {
	t.Helper()
	s, err := clusterdns.Start("127.0.0.1:0", "cluster.local.")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	for _, svc := range svcs {
		if err := s.SetService(svc); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

func pods(n int) []clusterdns.Endpoint { return clusterdns.Pods("web", n) }

var grpcPort = []clusterdns.Port{{Name: "grpc", Protocol: "tcp", Port: 9090}}

func resolve(t *testing.T, server *clusterdns.Server, target string) ([]Endpoint, error) {
	t.Helper()
	spec, err := ParseTarget(strings.ReplaceAll(target, "SERVER", server.Addr()))
	if err != nil {
		t.Fatal(err)
	}
	return NewResolver(NetLookuper(spec.Server)).Resolve(t.Context(), spec)
}

func TestResolveAgainstClusterDNS(t *testing.T) {
	server := startDNS(t,
		clusterdns.Service{Namespace: "ns", Name: "vip", ClusterIP: "10.96.0.20", Ports: grpcPort},
		clusterdns.Service{Namespace: "ns", Name: "web", ClusterIP: "None", Ports: grpcPort, Endpoints: pods(3)},
		clusterdns.Service{Namespace: "ns", Name: "ds", ClusterIP: "None", Ports: grpcPort,
			Endpoints: []clusterdns.Endpoint{{IP: "10.244.1.7"}, {IP: "10.244.2.9"}}},
		clusterdns.Service{Namespace: "ns", Name: "empty", ClusterIP: "None", Ports: grpcPort},
	)
	headless := []Endpoint{
		{Addr: "10.244.0.10:9090", DNSName: "web.ns.svc.cluster.local"},
		{Addr: "10.244.0.11:9090", DNSName: "web.ns.svc.cluster.local"},
		{Addr: "10.244.0.12:9090", DNSName: "web.ns.svc.cluster.local"},
	}
	perPod := []Endpoint{
		{Addr: "10.244.0.10:9090", DNSName: "web-0.web.ns.svc.cluster.local"},
		{Addr: "10.244.0.11:9090", DNSName: "web-1.web.ns.svc.cluster.local"},
		{Addr: "10.244.0.12:9090", DNSName: "web-2.web.ns.svc.cluster.local"},
	}
	cases := []struct {
		name, target string
		want         []Endpoint
		noRecords    bool
	}{
		{"ClusterIP A is the VIP", "t=dns://SERVER/vip.ns.svc.cluster.local:9090",
			[]Endpoint{{Addr: "10.96.0.20:9090", DNSName: "vip.ns.svc.cluster.local"}}, false},
		{"headless A is every ready pod", "t=dns://SERVER/web.ns.svc.cluster.local:9090", headless, false},
		{"SRV of a headless named port", "t=srv://SERVER/_grpc._tcp.web.ns.svc.cluster.local", perPod, false},
		{"SRV names pods without hostname by dashed IP", "t=srv://SERVER/_grpc._tcp.ds.ns.svc.cluster.local", []Endpoint{
			{Addr: "10.244.1.7:9090", DNSName: "10-244-1-7.ds.ns.svc.cluster.local"},
			{Addr: "10.244.2.9:9090", DNSName: "10-244-2-9.ds.ns.svc.cluster.local"},
		}, false},
		{"StatefulSet ordinals from SRV", "t=statefulset://SERVER/web.web.ns.svc.cluster.local:9090", perPod, false},
		{"StatefulSet ordinals from replicas", "t=statefulset://SERVER/web.web.ns.svc.cluster.local:9090?replicas=2", perPod[:2], false},
		{"StatefulSet replicas beyond the ready pods", "t=statefulset://SERVER/web.web.ns.svc.cluster.local:9090?replicas=5", perPod, false},
		{"headless without ready pods is NXDOMAIN", "t=dns://SERVER/empty.ns.svc.cluster.local:9090", nil, true},
		{"unknown service", "t=srv://SERVER/_grpc._tcp.nope.ns.svc.cluster.local", nil, true},
		{"unknown port name", "t=srv://SERVER/_http._tcp.web.ns.svc.cluster.local", nil, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := resolve(t, server, c.target)
			if c.noRecords {
				if !errors.Is(err, ErrNoRecords) {
					t.Fatalf("got %v, %v; want ErrNoRecords", got, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, c.want) {
				t.Errorf("got  %v\nwant %v", got, c.want)
			}
		})
	}
}

func TestResolveErrorsNameTheQuery(t *testing.T) {
	server := startDNS(t)
	server.SetFailure(dns.RcodeServerFailure)
	_, err := resolve(t, server, "t=srv://SERVER/_grpc._tcp.web.ns.svc.cluster.local")
	if err == nil || errors.Is(err, ErrNoRecords) || !strings.Contains(err.Error(), "SRV _grpc._tcp.web.ns.svc.cluster.local") {
		t.Errorf("SERVFAIL: %v; want a failure (not no-records) naming the SRV query", err)
	}
}

func TestResolveAbsoluteName(t *testing.T) {
	// A name given with its trailing dot is reported without it.
	server := startDNS(t, clusterdns.Service{Namespace: "ns", Name: "web", ClusterIP: "None", Ports: grpcPort, Endpoints: pods(1)})
	got, err := resolve(t, server, "t=dns://SERVER/web.ns.svc.cluster.local.:9090")
	if err != nil || len(got) != 1 || got[0].DNSName != "web.ns.svc.cluster.local" {
		t.Errorf("absolute name: %v, %v", got, err)
	}
}

// target runs a Target over the test server, recording every update.
func target(t *testing.T, server *clusterdns.Server, spec string, interval time.Duration) (*Target, chan []Endpoint) {
	t.Helper()
	sp, err := ParseTarget(strings.ReplaceAll(spec, "SERVER", server.Addr()))
	if err != nil {
		t.Fatal(err)
	}
	updates := make(chan []Endpoint, 100)
	tg := NewTarget(sp, NewResolver(NetLookuper(sp.Server)), TargetOptions{
		Interval: interval, Timeout: 500 * time.Millisecond,
		OnUpdate: func(eps []Endpoint) { updates <- eps },
	})
	return tg, updates
}

func TestTargetFollowsScaling(t *testing.T) {
	for _, spec := range []string{
		"t=dns://SERVER/web.ns.svc.cluster.local:9090",
		"t=srv://SERVER/_grpc._tcp.web.ns.svc.cluster.local",
		"t=statefulset://SERVER/web.web.ns.svc.cluster.local:9090",
	} {
		t.Run(strings.SplitN(spec, ":", 2)[0][2:], func(t *testing.T) {
			svc := clusterdns.Service{Namespace: "ns", Name: "web", ClusterIP: "None", Ports: grpcPort, Endpoints: pods(3)}
			server := startDNS(t, svc)
			tg, updates := target(t, server, spec, time.Hour) // refreshed by hand: one call, one interval
			for _, n := range []int{3, 5, 2, 0, 1} {
				svc.Endpoints = pods(n)
				server.SetService(svc)
				// Scaled to 0 too: an empty answer is a successful refresh.
				if err := tg.Refresh(t.Context()); err != nil {
					t.Fatalf("scaled to %d: %v", n, err)
				}
				if got := len(tg.State().Endpoints); got != n {
					t.Errorf("after scaling to %d and one refresh: %d endpoints", n, got)
				}
			}
			// Every change, and only changes, reached OnUpdate: 3, 5, 2, 0, 1.
			var sizes []int
			for len(updates) > 0 {
				sizes = append(sizes, len(<-updates))
			}
			if !slices.Equal(sizes, []int{3, 5, 2, 0, 1}) {
				t.Errorf("updates of sizes %v, want [3 5 2 0 1]", sizes)
			}
		})
	}
}

func TestTargetKeepsLastGoodSetThroughOutage(t *testing.T) {
	for _, failure := range []struct {
		name  string
		rcode int
	}{{"SERVFAIL", dns.RcodeServerFailure}, {"REFUSED", dns.RcodeRefused}, {"no answer", clusterdns.Drop}} {
		t.Run(failure.name, func(t *testing.T) {
			server := startDNS(t, clusterdns.Service{Namespace: "ns", Name: "web", ClusterIP: "None", Ports: grpcPort, Endpoints: pods(3)})
			tg, _ := target(t, server, "t=srv://SERVER/_grpc._tcp.web.ns.svc.cluster.local", time.Hour)
			if err := tg.Refresh(t.Context()); err != nil {
				t.Fatal(err)
			}
			good := tg.State()
			server.SetFailure(failure.rcode)
			err := tg.Refresh(t.Context())
			st := tg.State()
			if err == nil || st.LastError == nil {
				t.Fatalf("refresh during the outage: %v; want the error reported", err)
			}
			if !slices.Equal(st.Endpoints, good.Endpoints) {
				t.Errorf("outage changed the endpoints to %v; want the last good %v", st.Endpoints, good.Endpoints)
			}
			if st.RefreshErrors != 1 || !st.LastSuccess.Equal(good.LastSuccess) {
				t.Errorf("state after outage: errors %d, last success moved %v -> %v", st.RefreshErrors, good.LastSuccess, st.LastSuccess)
			}
			server.SetFailure(0)
			if err := tg.Refresh(t.Context()); err != nil || tg.State().LastError != nil {
				t.Errorf("after the outage: %v", err)
			}
		})
	}
}

func TestTargetRunRefreshesPeriodicallyAndEarly(t *testing.T) {
	server := startDNS(t, clusterdns.Service{Namespace: "ns", Name: "web", ClusterIP: "None", Ports: grpcPort, Endpoints: pods(1)})
	tg, updates := target(t, server, "t=dns://SERVER/web.ns.svc.cluster.local:9090", 50*time.Millisecond)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	go tg.Run(ctx)
	<-updates // the first periodic refresh finds the pod
	server.SetService(clusterdns.Service{Namespace: "ns", Name: "web", ClusterIP: "None", Ports: grpcPort, Endpoints: pods(4)})
	select {
	case eps := <-updates:
		if len(eps) != 4 {
			t.Errorf("periodic refresh saw %d endpoints, want 4", len(eps))
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no periodic refresh")
	}

	// An early refresh comes without waiting for the interval.
	slow, slowUpdates := target(t, server, "t=dns://SERVER/web.ns.svc.cluster.local:9090", time.Hour)
	go slow.Run(ctx)
	slow.RefreshSoon()
	select {
	case eps := <-slowUpdates:
		if len(eps) != 4 {
			t.Errorf("early refresh saw %d endpoints, want 4", len(eps))
		}
	case <-time.After(10 * time.Second):
		t.Fatal("RefreshSoon did not refresh")
	}
}

// Go's resolver names the server of /etc/resolv.conf in its errors even when
// the query went elsewhere; a target's error must name the server asked.
func TestResolveErrorsNameTheServerAsked(t *testing.T) {
	server := startDNS(t)
	for _, c := range []struct {
		name    string
		rcode   int
		target  string
		wantMsg string
	}{
		{"SERVFAIL on SRV", dns.RcodeServerFailure, "t=srv://SERVER/_grpc._tcp.web.ns.svc.cluster.local", "server misbehaving"},
		{"REFUSED on A", dns.RcodeRefused, "t=dns://SERVER/web.ns.svc.cluster.local:9090", ""},
		{"NXDOMAIN on A", 0, "t=dns://SERVER/nope.ns.svc.cluster.local:9090", "no such host"},
		{"NXDOMAIN per pod", 0, "t=statefulset://SERVER/web.web.ns.svc.cluster.local:9090?replicas=1", ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			server.SetFailure(c.rcode)
			_, err := resolve(t, server, c.target)
			if err == nil {
				t.Fatal("no error")
			}
			msg := err.Error()
			if !strings.Contains(msg, "on "+server.Addr()) || !strings.Contains(msg, c.wantMsg) {
				t.Errorf("%q does not name the server asked, %s", msg, server.Addr())
			}
			var dnsErr *net.DNSError
			if errors.As(err, &dnsErr) && dnsErr.Server != server.Addr() {
				t.Errorf("DNSError.Server %q, want %q", dnsErr.Server, server.Addr())
			}
		})
	}
}

// The pool (OnUpdate) gets a new set before the state shows it: a client
// that reads ListTargets and then fans out finds every endpoint it read.
func TestTargetUpdatesThePoolBeforeTheState(t *testing.T) {
	svc := clusterdns.Service{Namespace: "ns", Name: "web", ClusterIP: "None", Ports: grpcPort, Endpoints: pods(2)}
	server := startDNS(t, svc)
	sp, err := ParseTarget("t=dns://" + server.Addr() + "/web.ns.svc.cluster.local:9090")
	if err != nil {
		t.Fatal(err)
	}
	var tg *Target
	var shownDuringUpdate []int
	tg = NewTarget(sp, NewResolver(NetLookuper(sp.Server)), TargetOptions{
		Interval: time.Hour, Timeout: 500 * time.Millisecond,
		OnUpdate: func([]Endpoint) { shownDuringUpdate = append(shownDuringUpdate, len(tg.State().Endpoints)) },
	})
	for _, n := range []int{2, 4, 1} {
		svc.Endpoints = pods(n)
		server.SetService(svc)
		if err := tg.Refresh(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	// While the pool took 2, then 4, then 1, the state still showed the set before.
	if !slices.Equal(shownDuringUpdate, []int{0, 2, 4}) {
		t.Errorf("the state showed %v endpoints while the pool was updated; want [0 2 4] (the previous sets)", shownDuringUpdate)
	}
}
