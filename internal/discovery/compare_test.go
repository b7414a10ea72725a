package discovery

import (
	"cmp"
	"slices"
	"strings"
	"testing"
)

func TestSpecService(t *testing.T) {
	for _, c := range []struct {
		spec, name, ns string
		ok             bool
	}{
		{"t=kubernetes:///web.shop:grpc", "web", "shop", true},
		{"t=dns:///web.shop.svc.cluster.local:9090", "web", "shop", true},
		{"t=dns:///Web.Shop.svc.cluster.local.:9090", "web", "shop", true},
		{"t=srv:///_grpc._tcp.web.shop.svc.cluster.local", "web", "shop", true},
		{"t=statefulset:///db.db-hl.shop.svc.cluster.local:5432?replicas=2", "db-hl", "shop", true},
		{"t=dns:///web:9090", "", "", false},                   // no namespace: the search path decides
		{"t=dns:///web.shop:9090", "", "", false},              // a pod's search path could make it anything
		{"t=dns:///example.com:443", "", "", false},            // not a Service name
		{"t=static:///10.0.0.1:9090", "", "", false},           // no name at all
		{"t=dns:///a.b.notsvc.cluster.local:1", "", "", false}, // third label is not svc
	} {
		sp, err := ParseTarget(c.spec)
		if err != nil {
			t.Fatalf("%s: %v", c.spec, err)
		}
		name, ns, ok := sp.Service()
		if name != c.name || ns != c.ns || ok != c.ok {
			t.Errorf("%s: Service() = %q, %q, %v; want %q, %q, %v", c.spec, name, ns, ok, c.name, c.ns, c.ok)
		}
	}
}

func TestCompare(t *testing.T) {
	dns := func(ips ...string) []Endpoint {
		var eps []Endpoint
		for _, ip := range ips {
			eps = append(eps, Endpoint{Addr: ipPort(ip, "9090"), DNSName: "web.ns.svc.cluster.local"})
		}
		return eps
	}
	type cond int
	const (
		ready cond = iota
		notReady
		terminating
	)
	api := func(eps map[string]cond) []Endpoint {
		var out []Endpoint
		for ip, c := range eps {
			out = append(out, Endpoint{Addr: ipPort(ip, "8080"), Slice: SliceInfo{Known: true,
				Ready: c == ready, Serving: c != notReady, Terminating: c == terminating}})
		}
		slices.SortFunc(out, func(a, b Endpoint) int { return cmp.Compare(a.Addr, b.Addr) })
		return out
	}
	for _, c := range []struct {
		name    string
		dns     []Endpoint
		api     []Endpoint
		agree   bool
		summary string
	}{
		{"same ready set, other port", dns("10.0.0.1", "10.0.0.2"), api(map[string]cond{"10.0.0.1": ready, "10.0.0.2": ready}), true,
			"DNS: 2 addresses; API: 2 endpoints; DNS answers exactly the ready endpoints"},
		{"DNS leaves out the not ready and the terminating", dns("10.0.0.1", "10.0.0.2", "10.0.0.3"),
			api(map[string]cond{"10.0.0.1": ready, "10.0.0.2": ready, "10.0.0.3": ready, "10.0.0.4": notReady, "10.0.0.5": terminating}), true,
			"DNS: 3 addresses; API: 5 endpoints, 1 not ready, 1 terminating; DNS answers exactly the ready endpoints; only in the API: 10.0.0.4 (not ready), 10.0.0.5 (terminating)"},
		{"DNS behind: a new ready pod and a deleted one", dns("10.0.0.1", "10.0.0.9"), api(map[string]cond{"10.0.0.1": ready, "10.0.0.2": ready}), false,
			"DNS: 2 addresses; API: 2 endpoints; only in DNS: 10.0.0.9; only in the API: 10.0.0.2 (ready)"},
		{"not ready and terminating named", dns("10.0.0.1"), api(map[string]cond{"10.0.0.1": ready, "10.0.0.2": notReady, "10.0.0.3": terminating}), true,
			"DNS: 1 address; API: 3 endpoints, 1 not ready, 1 terminating; DNS answers exactly the ready endpoints; only in the API: 10.0.0.2 (not ready), 10.0.0.3 (terminating)"},
		{"a ClusterIP's virtual IP", dns("10.96.0.20"), api(map[string]cond{"10.0.0.1": ready}), false,
			"DNS: 1 address; API: 1 endpoint; only in DNS: 10.96.0.20 (a ClusterIP Service's virtual IP?); only in the API: 10.0.0.1 (ready)"},
		{"publishNotReadyAddresses", dns("10.0.0.1", "10.0.0.2"), api(map[string]cond{"10.0.0.1": ready, "10.0.0.2": notReady}), false,
			"DNS: 2 addresses; API: 2 endpoints, 1 not ready; in DNS though not ready: 10.0.0.2"},
		{"IPv6 spelled two ways", dns("2001:db8::1"), api(map[string]cond{"2001:0db8:0:0::1": ready}), true,
			"DNS: 1 address; API: 1 endpoint; DNS answers exactly the ready endpoints"},
		{"nothing either way", nil, nil, true, "DNS: 0 addresses; API: 0 endpoints; DNS answers exactly the ready endpoints"},
		{"NXDOMAIN while every pod is not ready", nil, api(map[string]cond{"10.0.0.1": notReady}), true,
			"DNS: 0 addresses; API: 1 endpoint, 1 not ready; DNS answers exactly the ready endpoints; only in the API: 10.0.0.1 (not ready)"},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := Compare(c.dns, c.api)
			if got.Agree != c.agree || got.String() != c.summary {
				t.Errorf("Compare: agree %v, %q\nwant agree %v, %q", got.Agree, got.String(), c.agree, c.summary)
			}
		})
	}
}

func ipPort(ip, port string) string {
	if strings.Contains(ip, ":") {
		return "[" + ip + "]:" + port
	}
	return ip + ":" + port
}
