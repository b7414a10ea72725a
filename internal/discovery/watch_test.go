package discovery

import (
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

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
		{"service gone: no records", func() { server.DeleteService("ns", "web") }, true, 0, "no records"},
		{"still gone", func() {}, false, 0, "no records"},
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
		if after.Refreshes != before.Refreshes+1 {
			t.Errorf("%s: refreshes %d -> %d, want one more", st.name, before.Refreshes, after.Refreshes)
		}
	}
}
