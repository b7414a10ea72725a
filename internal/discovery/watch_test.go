package discovery

import (
	"net"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/knowingnode/knowingnode/harness/clusterdns"
)

// TestTargetWatch: against a real DNS server, a refresh that changes the
// endpoints or the error closes the watch channel and bumps the version; one
// that changes nothing does neither.
func TestTargetWatch(t *testing.T) {
	server := startDNS(t, clusterdns.Service{Namespace: "ns", Name: "web", ClusterIP: "None", Ports: grpcPort, Endpoints: pods(2)})
	spec, err := ParseTarget("web=dns://" + server.Addr() + "/web.ns.svc.cluster.local:9090")
	if err != nil {
		t.Fatal(err)
	}
	target := NewTarget(spec, NewResolver(NetLookuper(spec.Server)), TargetOptions{Interval: time.Hour})
	steps := []struct {
		name      string
		change    func()
		changed   bool
		endpoints int
		errLike   string
	}{
		{"first answer", func() {}, true, 2, ""},
		{"same answer", func() {}, false, 2, ""},
		{"a pod more", func() {
			server.SetService(clusterdns.Service{Namespace: "ns", Name: "web", ClusterIP: "None", Ports: grpcPort, Endpoints: pods(3)})
		}, true, 3, ""},
		{"server fails: error, endpoints kept", func() { server.SetFailure(dns.RcodeServerFailure) }, true, 3, "lookup A/AAAA"},
		{"same failure again", func() {}, false, 3, "lookup A/AAAA"},
		{"server answers again", func() { server.SetFailure(dns.RcodeSuccess) }, true, 3, ""},
		// An authoritative empty answer is a successful refresh (issue 22,
		// finding 7): no error, and the last success moves.
		{"service gone: an empty answer", func() { server.DeleteService("ns", "web") }, true, 0, ""},
		{"still gone", func() {}, false, 0, ""},
	}
	for _, st := range steps {
		before, ch := target.Watch()
		st.change()
		target.Refresh(t.Context())
		after, _ := target.Watch()
		closed := false
		select {
		case <-ch:
			closed = true
		default:
		}
		if closed != st.changed || (after.Version != before.Version) != st.changed {
			t.Errorf("%s: channel closed %v, version %d -> %d; want changed=%v", st.name, closed, before.Version, after.Version, st.changed)
		}
		if len(after.Endpoints) != st.endpoints {
			t.Errorf("%s: %d endpoints, want %d", st.name, len(after.Endpoints), st.endpoints)
		}
		if got := errText(after.LastError); !strings.Contains(got, st.errLike) || (st.errLike == "") != (got == "") {
			t.Errorf("%s: error %q, want one containing %q", st.name, got, st.errLike)
		}
		if (after.LastError == nil) != after.LastSuccess.Equal(after.LastRefresh) {
			t.Errorf("%s: error %v, last success %v, last refresh %v: a refresh succeeds exactly when it has no error", st.name, after.LastError, after.LastSuccess, after.LastRefresh)
		}
		if after.Refreshes != before.Refreshes+1 {
			t.Errorf("%s: refreshes %d -> %d, want one more", st.name, before.Refreshes, after.Refreshes)
		}
	}
}

// TestTargetEmptyAnswerIsSuccess: a Service scaled to 0 (a headless Service
// without ready pods: NXDOMAIN) is a successful refresh with no endpoints,
// counted as no error, so seconds_since_success does not climb (issue 22,
// finding 7).
func TestTargetEmptyAnswerIsSuccess(t *testing.T) {
	server := startDNS(t, clusterdns.Service{Namespace: "ns", Name: "web", ClusterIP: "None", Ports: grpcPort, Endpoints: pods(2)})
	spec, err := ParseTarget("web=srv://" + server.Addr() + "/_grpc._tcp.web.ns.svc.cluster.local")
	if err != nil {
		t.Fatal(err)
	}
	var updates [][]Endpoint
	target := NewTarget(spec, NewResolver(NetLookuper(spec.Server)), TargetOptions{Interval: time.Hour, OnUpdate: func(eps []Endpoint) { updates = append(updates, eps) }})
	if err := target.Refresh(t.Context()); err != nil {
		t.Fatal(err)
	}
	server.SetService(clusterdns.Service{Namespace: "ns", Name: "web", ClusterIP: "None", Ports: grpcPort}) // scaled to 0
	if err := target.Refresh(t.Context()); err != nil {
		t.Errorf("refresh of a Service scaled to 0: %v, want success", err)
	}
	st := target.State()
	if len(st.Endpoints) != 0 || st.LastError != nil || st.RefreshErrors != 0 || !st.LastSuccess.Equal(st.LastRefresh) {
		t.Errorf("after scale to 0: %d endpoints, error %v, %d refresh errors, last success %v (last refresh %v); want 0, nil, 0, the last refresh",
			len(st.Endpoints), st.LastError, st.RefreshErrors, st.LastSuccess, st.LastRefresh)
	}
	if len(updates) != 2 || len(updates[1]) != 0 {
		t.Errorf("pool updates %v; want the 2 pods, then none", updates)
	}
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(NewCollector(target))
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "knowingnode_discovery_refresh_errors_total" {
			if n := mf.GetMetric()[0].GetCounter().GetValue(); n != 0 {
				t.Errorf("refresh_errors_total %v, want 0", n)
			}
		}
	}
}

// TestTargetOutageIsOneChange: while the DNS server is down, every refresh
// fails with a text naming a new local port; that is one change, not one per
// refresh, so a WatchTargets stream sends one event, not one per refresh
// (issue 22, finding 12).
func TestTargetOutageIsOneChange(t *testing.T) {
	// A UDP port nobody listens on: each query is refused (ICMP), and the
	// error names the query's own local port.
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	down := pc.LocalAddr().String()
	pc.Close()
	spec, err := ParseTarget("web=dns://" + down + "/web.ns.svc.cluster.local:9090")
	if err != nil {
		t.Fatal(err)
	}
	target := NewTarget(spec, NewResolver(NetLookuper(spec.Server)), TargetOptions{Interval: time.Hour, Timeout: 2 * time.Second})
	var texts []string
	for range 4 {
		if err := target.Refresh(t.Context()); err == nil {
			t.Fatal("a refresh against a closed port succeeded")
		}
		texts = append(texts, target.State().LastError.Error())
	}
	if st := target.State(); st.Version != 1 {
		t.Errorf("version %d after 4 refreshes failing the same way, want 1 (one change: the error appeared); errors:\n%s", st.Version, strings.Join(texts, "\n"))
	}
}

// TestTargetFirstEmptyAnswerIsAChange: a Service without pods from the
// start answers NXDOMAIN; that first answer is a change (Version 1), so a
// watcher waiting for the first answer (a gRPC client, bin/load) hears of it
// rather than waiting for ever; the same answer again is none.
func TestTargetFirstEmptyAnswerIsAChange(t *testing.T) {
	server := startDNS(t, clusterdns.Service{Namespace: "ns", Name: "web", ClusterIP: "None", Ports: grpcPort})
	spec, err := ParseTarget("web=dns://" + server.Addr() + "/web.ns.svc.cluster.local:9090")
	if err != nil {
		t.Fatal(err)
	}
	target := NewTarget(spec, NewResolver(NetLookuper(spec.Server)), TargetOptions{Interval: time.Hour})
	for i, want := range []uint64{1, 1} {
		_, ch := target.Watch()
		if err := target.Refresh(t.Context()); err != nil {
			t.Fatalf("refresh %d of an empty Service: %v, want success", i+1, err)
		}
		st := target.State()
		closed := false
		select {
		case <-ch:
			closed = true
		default:
		}
		if st.Version != want || closed != (i == 0) || len(st.Endpoints) != 0 {
			t.Errorf("refresh %d: version %d, watch closed %v, %d endpoints; want version %d, closed only by the first, none", i+1, st.Version, closed, len(st.Endpoints), want)
		}
	}
}
