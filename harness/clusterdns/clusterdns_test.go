package clusterdns

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
)

const zone = "cluster.local."

func start(t *testing.T) *Server {
	t.Helper()
	s, err := Start("127.0.0.1:0", zone)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

func mustSet(t *testing.T, s *Server, svc Service) {
	t.Helper()
	if err := s.SetService(svc); err != nil {
		t.Fatal(err)
	}
}

// fixture is a cluster of the shapes the frontend's discovery meets.
func fixture(t *testing.T) *Server {
	s := start(t)
	grpcPort := []Port{{Name: "grpc", Protocol: "tcp", Port: 9090}, {Name: "admin", Port: 9091}, {Port: 8000}}
	mustSet(t, s, Service{Namespace: "kn", Name: "vip", ClusterIP: "10.96.0.10", Ports: grpcPort,
		Endpoints: []Endpoint{{IP: "10.244.0.1"}}}) // endpoints of a ClusterIP service stay hidden
	mustSet(t, s, Service{Namespace: "kn", Name: "headless", ClusterIP: "None", Ports: grpcPort, TTL: 30,
		Endpoints: []Endpoint{{IP: "10.244.0.5"}, {IP: "10.244.1.7"}}})
	mustSet(t, s, Service{Namespace: "kn", Name: "backend", Ports: grpcPort[:1],
		Endpoints: []Endpoint{{IP: "10.244.0.11", Hostname: "backend-0"}, {IP: "10.244.1.12", Hostname: "backend-1"}, {IP: "fd00::13", Hostname: "backend-2"}}})
	mustSet(t, s, Service{Namespace: "kn", Name: "empty", ClusterIP: "None", Ports: grpcPort})
	mustSet(t, s, Service{Namespace: "other", Name: "v6", ClusterIP: "fd00:96::1", Ports: grpcPort[:1]})
	return s
}

// rrStrings renders records without the TTL-independent noise, sorted.
func rrStrings(rrs []dns.RR) []string {
	var out []string
	for _, rr := range rrs {
		switch r := rr.(type) {
		case *dns.A:
			out = append(out, fmt.Sprintf("%s A %s", r.Hdr.Name, r.A))
		case *dns.AAAA:
			out = append(out, fmt.Sprintf("%s AAAA %s", r.Hdr.Name, r.AAAA))
		case *dns.SRV:
			out = append(out, fmt.Sprintf("%s SRV %d %s", r.Hdr.Name, r.Port, r.Target))
		case *dns.SOA:
			out = append(out, fmt.Sprintf("%s SOA", r.Hdr.Name))
		case *dns.OPT:
			// EDNS0, not a record
		default:
			out = append(out, rr.String())
		}
	}
	sort.Strings(out)
	return out
}

func exchange(t *testing.T, s *Server, net, name string, qtype uint16) *dns.Msg {
	t.Helper()
	c := &dns.Client{Net: net, Timeout: 5 * time.Second}
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	r, _, err := c.Exchange(m, s.Addr())
	if err != nil {
		t.Fatalf("%s %s over %s: %v", name, dns.TypeToString[qtype], net, err)
	}
	return r
}

func TestRecords(t *testing.T) {
	s := fixture(t)
	tests := []struct {
		name      string
		qtype     uint16
		rcode     int
		answer    []string
		extra     []string
		wantTTL   uint32 // of the answers; 0 skips
		authority bool   // an SOA in the authority section
	}{
		// ClusterIP service.
		{name: "vip.kn.svc.cluster.local.", qtype: dns.TypeA, answer: []string{"vip.kn.svc.cluster.local. A 10.96.0.10"}, wantTTL: DefaultTTL},
		{name: "VIP.Kn.svc.Cluster.Local.", qtype: dns.TypeA, answer: []string{"VIP.Kn.svc.Cluster.Local. A 10.96.0.10"}},
		{name: "vip.kn.svc.cluster.local.", qtype: dns.TypeAAAA, authority: true}, // NODATA
		{name: "_grpc._tcp.vip.kn.svc.cluster.local.", qtype: dns.TypeSRV,
			answer: []string{"_grpc._tcp.vip.kn.svc.cluster.local. SRV 9090 vip.kn.svc.cluster.local."},
			extra:  []string{"vip.kn.svc.cluster.local. A 10.96.0.10"}},
		{name: "_admin._tcp.vip.kn.svc.cluster.local.", qtype: dns.TypeSRV,
			answer: []string{"_admin._tcp.vip.kn.svc.cluster.local. SRV 9091 vip.kn.svc.cluster.local."},
			extra:  []string{"vip.kn.svc.cluster.local. A 10.96.0.10"}},
		{name: "vip.kn.svc.cluster.local.", qtype: dns.TypeSRV, // every named port
			answer: []string{"vip.kn.svc.cluster.local. SRV 9090 vip.kn.svc.cluster.local.", "vip.kn.svc.cluster.local. SRV 9091 vip.kn.svc.cluster.local."},
			extra:  []string{"vip.kn.svc.cluster.local. A 10.96.0.10"}},
		{name: "_grpc._udp.vip.kn.svc.cluster.local.", qtype: dns.TypeSRV, rcode: dns.RcodeNameError, authority: true},
		{name: "_http._tcp.vip.kn.svc.cluster.local.", qtype: dns.TypeSRV, rcode: dns.RcodeNameError, authority: true},
		{name: "_grpc._tcp.vip.kn.svc.cluster.local.", qtype: dns.TypeA, authority: true}, // exists, no A
		{name: "10-244-0-1.vip.kn.svc.cluster.local.", qtype: dns.TypeA, rcode: dns.RcodeNameError, authority: true},

		// Headless service without hostnames: the dashed IP names endpoints.
		{name: "headless.kn.svc.cluster.local.", qtype: dns.TypeA, wantTTL: 30,
			answer: []string{"headless.kn.svc.cluster.local. A 10.244.0.5", "headless.kn.svc.cluster.local. A 10.244.1.7"}},
		{name: "_grpc._tcp.headless.kn.svc.cluster.local.", qtype: dns.TypeSRV, wantTTL: 30,
			answer: []string{
				"_grpc._tcp.headless.kn.svc.cluster.local. SRV 9090 10-244-0-5.headless.kn.svc.cluster.local.",
				"_grpc._tcp.headless.kn.svc.cluster.local. SRV 9090 10-244-1-7.headless.kn.svc.cluster.local.",
			},
			extra: []string{
				"10-244-0-5.headless.kn.svc.cluster.local. A 10.244.0.5",
				"10-244-1-7.headless.kn.svc.cluster.local. A 10.244.1.7",
			}},
		{name: "10-244-1-7.headless.kn.svc.cluster.local.", qtype: dns.TypeA,
			answer: []string{"10-244-1-7.headless.kn.svc.cluster.local. A 10.244.1.7"}},
		{name: "10-244-9-9.headless.kn.svc.cluster.local.", qtype: dns.TypeA, rcode: dns.RcodeNameError, authority: true},

		// Headless service of a StatefulSet: pods named by hostname, one v6.
		{name: "backend.kn.svc.cluster.local.", qtype: dns.TypeA,
			answer: []string{"backend.kn.svc.cluster.local. A 10.244.0.11", "backend.kn.svc.cluster.local. A 10.244.1.12"}},
		{name: "backend.kn.svc.cluster.local.", qtype: dns.TypeAAAA,
			answer: []string{"backend.kn.svc.cluster.local. AAAA fd00::13"}},
		{name: "backend-1.backend.kn.svc.cluster.local.", qtype: dns.TypeA,
			answer: []string{"backend-1.backend.kn.svc.cluster.local. A 10.244.1.12"}},
		{name: "backend-2.backend.kn.svc.cluster.local.", qtype: dns.TypeAAAA,
			answer: []string{"backend-2.backend.kn.svc.cluster.local. AAAA fd00::13"}},
		{name: "backend-2.backend.kn.svc.cluster.local.", qtype: dns.TypeA, authority: true}, // NODATA
		{name: "backend-3.backend.kn.svc.cluster.local.", qtype: dns.TypeA, rcode: dns.RcodeNameError, authority: true},
		{name: "_grpc._tcp.backend.kn.svc.cluster.local.", qtype: dns.TypeSRV,
			answer: []string{
				"_grpc._tcp.backend.kn.svc.cluster.local. SRV 9090 backend-0.backend.kn.svc.cluster.local.",
				"_grpc._tcp.backend.kn.svc.cluster.local. SRV 9090 backend-1.backend.kn.svc.cluster.local.",
				"_grpc._tcp.backend.kn.svc.cluster.local. SRV 9090 backend-2.backend.kn.svc.cluster.local.",
			},
			extra: []string{
				"backend-0.backend.kn.svc.cluster.local. A 10.244.0.11",
				"backend-1.backend.kn.svc.cluster.local. A 10.244.1.12",
				"backend-2.backend.kn.svc.cluster.local. AAAA fd00::13",
			}},

		// Headless service with no ready endpoints: the name does not exist.
		{name: "empty.kn.svc.cluster.local.", qtype: dns.TypeA, rcode: dns.RcodeNameError, authority: true},
		{name: "_grpc._tcp.empty.kn.svc.cluster.local.", qtype: dns.TypeSRV, rcode: dns.RcodeNameError, authority: true},

		// IPv6 ClusterIP.
		{name: "v6.other.svc.cluster.local.", qtype: dns.TypeAAAA, answer: []string{"v6.other.svc.cluster.local. AAAA fd00:96::1"}},
		{name: "v6.other.svc.cluster.local.", qtype: dns.TypeA, authority: true},
		{name: "_grpc._tcp.v6.other.svc.cluster.local.", qtype: dns.TypeSRV,
			answer: []string{"_grpc._tcp.v6.other.svc.cluster.local. SRV 9090 v6.other.svc.cluster.local."},
			extra:  []string{"v6.other.svc.cluster.local. AAAA fd00:96::1"}},

		// The rest of the zone.
		{name: "nope.kn.svc.cluster.local.", qtype: dns.TypeA, rcode: dns.RcodeNameError, authority: true},
		{name: "vip.nope.svc.cluster.local.", qtype: dns.TypeA, rcode: dns.RcodeNameError, authority: true},
		{name: "kn.svc.cluster.local.", qtype: dns.TypeA, authority: true}, // empty non-terminal
		{name: "nope.svc.cluster.local.", qtype: dns.TypeA, rcode: dns.RcodeNameError, authority: true},
		{name: "svc.cluster.local.", qtype: dns.TypeA, authority: true},
		{name: "_tcp.vip.kn.svc.cluster.local.", qtype: dns.TypeSRV, authority: true},
		{name: "10-244-0-5.kn.pod.cluster.local.", qtype: dns.TypeA, rcode: dns.RcodeNameError, authority: true},
		{name: "a.b.c.backend.kn.svc.cluster.local.", qtype: dns.TypeA, rcode: dns.RcodeNameError, authority: true},
		{name: "cluster.local.", qtype: dns.TypeSOA, answer: []string{"cluster.local. SOA"}},
		{name: "cluster.local.", qtype: dns.TypeA, authority: true},

		// Outside the zone: not ours to answer.
		{name: "example.com.", qtype: dns.TypeA, rcode: dns.RcodeRefused},
		{name: "vip.kn.svc.cluster.remote.", qtype: dns.TypeA, rcode: dns.RcodeRefused},
		{name: "local.", qtype: dns.TypeA, rcode: dns.RcodeRefused},
	}
	for _, network := range []string{"udp", "tcp"} {
		for _, tt := range tests {
			t.Run(network+"/"+tt.name+"/"+dns.TypeToString[tt.qtype], func(t *testing.T) {
				r := exchange(t, s, network, tt.name, tt.qtype)
				if r.Rcode != tt.rcode {
					t.Errorf("rcode %s, want %s", dns.RcodeToString[r.Rcode], dns.RcodeToString[tt.rcode])
				}
				if got := rrStrings(r.Answer); !slices.Equal(got, sorted(tt.answer)) {
					t.Errorf("answer\n%q\nwant\n%q", got, sorted(tt.answer))
				}
				if got := rrStrings(r.Extra); !slices.Equal(got, sorted(tt.extra)) {
					t.Errorf("additional\n%q\nwant\n%q", got, sorted(tt.extra))
				}
				if got := len(r.Ns) == 1 && r.Ns[0].Header().Rrtype == dns.TypeSOA; got != tt.authority {
					t.Errorf("authority %v, want SOA: %v", r.Ns, tt.authority)
				}
				if tt.rcode != dns.RcodeRefused && !r.Authoritative {
					t.Error("answer not authoritative")
				}
				for _, rr := range r.Answer {
					if tt.wantTTL != 0 && rr.Header().Ttl != tt.wantTTL {
						t.Errorf("TTL %d, want %d: %v", rr.Header().Ttl, tt.wantTTL, rr)
					}
				}
			})
		}
	}
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	sort.Strings(s)
	return s
}

// resolver is Go's own DNS client, the one the frontend's discovery uses,
// pointed at s.
func resolver(s *Server) *net.Resolver {
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, s.Addr())
	}}
}

func TestGoResolver(t *testing.T) {
	s := fixture(t)
	r := resolver(s)
	ctx := t.Context()

	t.Run("LookupHost", func(t *testing.T) {
		tests := []struct {
			host string
			want []string
		}{
			{"vip.kn.svc.cluster.local.", []string{"10.96.0.10"}},
			{"headless.kn.svc.cluster.local.", []string{"10.244.0.5", "10.244.1.7"}},
			{"backend.kn.svc.cluster.local.", []string{"10.244.0.11", "10.244.1.12", "fd00::13"}},
			{"backend-0.backend.kn.svc.cluster.local.", []string{"10.244.0.11"}},
			{"v6.other.svc.cluster.local.", []string{"fd00:96::1"}},
		}
		for _, tt := range tests {
			got, err := r.LookupHost(ctx, tt.host)
			if err != nil {
				t.Errorf("LookupHost(%s): %v", tt.host, err)
				continue
			}
			if !slices.Equal(sorted(got), sorted(tt.want)) {
				t.Errorf("LookupHost(%s) = %q, want %q", tt.host, got, tt.want)
			}
		}
	})

	t.Run("LookupSRV", func(t *testing.T) {
		cname, srvs, err := r.LookupSRV(ctx, "grpc", "tcp", "backend.kn.svc.cluster.local.")
		if err != nil {
			t.Fatal(err)
		}
		if cname != "_grpc._tcp.backend.kn.svc.cluster.local." {
			t.Errorf("cname %q", cname)
		}
		var got []string
		for _, srv := range srvs {
			got = append(got, fmt.Sprintf("%s:%d", srv.Target, srv.Port))
		}
		want := []string{"backend-0.backend.kn.svc.cluster.local.:9090", "backend-1.backend.kn.svc.cluster.local.:9090", "backend-2.backend.kn.svc.cluster.local.:9090"}
		if !slices.Equal(sorted(got), want) {
			t.Errorf("SRV %q, want %q", got, want)
		}
	})

	t.Run("not found", func(t *testing.T) {
		for _, host := range []string{"empty.kn.svc.cluster.local.", "nope.kn.svc.cluster.local."} {
			_, err := r.LookupHost(ctx, host)
			var de *net.DNSError
			if !errors.As(err, &de) || !de.IsNotFound {
				t.Errorf("LookupHost(%s) = %v; want not found", host, err)
			}
		}
		_, _, err := r.LookupSRV(ctx, "grpc", "tcp", "empty.kn.svc.cluster.local.")
		var de *net.DNSError
		if !errors.As(err, &de) || !de.IsNotFound {
			t.Errorf("LookupSRV(empty) = %v; want not found", err)
		}
	})
}

func TestManyEndpointsTruncateToTCP(t *testing.T) {
	s := start(t)
	const n = 200 // far beyond one 512-byte (or 1232-byte EDNS0) UDP answer
	svc := Service{Namespace: "kn", Name: "big", Ports: []Port{{Name: "grpc", Port: 9090}}}
	var want []string
	for i := range n {
		ip := fmt.Sprintf("10.244.%d.%d", i/250, i%250+1)
		svc.Endpoints = append(svc.Endpoints, Endpoint{IP: ip, Hostname: fmt.Sprintf("big-%d", i)})
		want = append(want, ip)
	}
	mustSet(t, s, svc)

	udp := exchange(t, s, "udp", "big.kn.svc.cluster.local.", dns.TypeA)
	if !udp.Truncated || len(udp.Answer) >= n {
		t.Errorf("UDP: truncated %v with %d answers; want truncated", udp.Truncated, len(udp.Answer))
	}
	tcp := exchange(t, s, "tcp", "big.kn.svc.cluster.local.", dns.TypeA)
	if tcp.Truncated || len(tcp.Answer) != n {
		t.Errorf("TCP: truncated %v with %d answers; want all %d", tcp.Truncated, len(tcp.Answer), n)
	}
	// Go's resolver retries a truncated answer over TCP by itself.
	got, err := resolver(s).LookupHost(t.Context(), "big.kn.svc.cluster.local.")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(sorted(got), sorted(want)) {
		t.Errorf("LookupHost found %d of %d", len(got), n)
	}
	_, srvs, err := resolver(s).LookupSRV(t.Context(), "grpc", "tcp", "big.kn.svc.cluster.local.")
	if err != nil || len(srvs) != n {
		t.Errorf("LookupSRV found %d of %d: %v", len(srvs), n, err)
	}
}

func TestScaleAndDelete(t *testing.T) {
	s := start(t)
	r := resolver(s)
	ctx := t.Context()
	const host = "backend.kn.svc.cluster.local."
	lookup := func() ([]string, error) {
		got, err := r.LookupHost(ctx, host)
		return sorted(got), err
	}
	svc := Service{Namespace: "kn", Name: "backend", Ports: []Port{{Name: "grpc", Port: 9090}}}
	steps := []struct {
		name  string
		apply func()
		want  []string // nil: not found
	}{
		{"before the service exists", func() {}, nil},
		{"scaled to 0", func() { mustSet(t, s, svc) }, nil},
		{"scaled to 1", func() {
			svc.Endpoints = []Endpoint{{IP: "10.0.0.1", Hostname: "backend-0"}}
			mustSet(t, s, svc)
		}, []string{"10.0.0.1"}},
		{"scaled to 3", func() {
			svc.Endpoints = append(svc.Endpoints, Endpoint{IP: "10.0.0.2", Hostname: "backend-1"}, Endpoint{IP: "10.0.0.3", Hostname: "backend-2"})
			mustSet(t, s, svc)
		}, []string{"10.0.0.1", "10.0.0.2", "10.0.0.3"}},
		{"caller's slice reused", func() {
			svc.Endpoints[0].IP = "10.9.9.9" // not set again: the server kept its copy
		}, []string{"10.0.0.1", "10.0.0.2", "10.0.0.3"}},
		{"scaled to 2", func() {
			svc.Endpoints = svc.Endpoints[1:]
			mustSet(t, s, svc)
		}, []string{"10.0.0.2", "10.0.0.3"}},
		{"deleted", func() { s.DeleteService("KN", "Backend") }, nil},
	}
	for _, st := range steps {
		st.apply()
		got, err := lookup()
		var de *net.DNSError
		switch {
		case st.want == nil && !(errors.As(err, &de) && de.IsNotFound):
			t.Errorf("%s: %q, %v; want not found", st.name, got, err)
		case st.want != nil && (err != nil || !slices.Equal(got, st.want)):
			t.Errorf("%s: %q, %v; want %q", st.name, got, err, st.want)
		}
	}
}

func TestFailure(t *testing.T) {
	s := fixture(t)
	const name = "vip.kn.svc.cluster.local."
	tests := []struct {
		name    string
		failure int
		rcode   int
		drop    bool
	}{
		{"server failure", dns.RcodeServerFailure, dns.RcodeServerFailure, false},
		{"refused", dns.RcodeRefused, dns.RcodeRefused, false},
		{"dropped", Drop, 0, true},
		{"restored", 0, dns.RcodeSuccess, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s.SetFailure(tt.failure)
			for _, network := range []string{"udp", "tcp"} {
				c := &dns.Client{Net: network, Timeout: 200 * time.Millisecond}
				m := new(dns.Msg)
				m.SetQuestion(name, dns.TypeA)
				r, _, err := c.Exchange(m, s.Addr())
				if tt.drop {
					var ne net.Error
					if !errors.As(err, &ne) || !ne.Timeout() {
						t.Errorf("%s: %v, %v; want a timeout", network, r, err)
					}
					continue
				}
				if err != nil {
					t.Fatalf("%s: %v", network, err)
				}
				if r.Rcode != tt.rcode {
					t.Errorf("%s: rcode %s, want %s", network, dns.RcodeToString[r.Rcode], dns.RcodeToString[tt.rcode])
				}
			}
			// Go's resolver sees an outage as a temporary error, not as a
			// name that does not exist: discovery must keep its last good set.
			ctx, cancel := context.WithTimeout(t.Context(), time.Second) // the drop case waits it out
			defer cancel()
			_, err := resolver(s).LookupHost(ctx, name)
			var de *net.DNSError
			switch {
			case tt.failure == 0 && err != nil:
				t.Errorf("LookupHost after restore: %v", err)
			case tt.failure != 0 && (!errors.As(err, &de) || de.IsNotFound):
				t.Errorf("LookupHost in outage: %v; want an error other than not found", err)
			}
		})
	}
}

func TestSetServiceErrors(t *testing.T) {
	s := start(t)
	tests := []struct {
		name string
		svc  Service
		want string
	}{
		{"no name", Service{Namespace: "kn"}, "DNS labels"},
		{"name with a dot", Service{Namespace: "kn", Name: "a.b"}, "DNS labels"},
		{"bad cluster IP", Service{Namespace: "kn", Name: "a", ClusterIP: "10.0.0"}, "cluster IP"},
		{"bad endpoint IP", Service{Namespace: "kn", Name: "a", Endpoints: []Endpoint{{IP: "x"}}}, "endpoint"},
		{"bad hostname", Service{Namespace: "kn", Name: "a", Endpoints: []Endpoint{{IP: "10.0.0.1", Hostname: "a_b"}}}, "hostname"},
		{"bad port name", Service{Namespace: "kn", Name: "a", Ports: []Port{{Name: "g rpc"}}}, "port name"},
	}
	for _, tt := range tests {
		if err := s.SetService(tt.svc); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: SetService = %v; want an error mentioning %q", tt.name, err, tt.want)
		}
	}
	if _, err := Start("127.0.0.1:0", "."); err == nil {
		t.Error("Start with the root zone succeeded")
	}
	if _, err := Start("nonsense", zone); err == nil {
		t.Error("Start with a bad address succeeded")
	}
}

func TestFixedPortAndClose(t *testing.T) {
	a := start(t)
	// The same port again fails rather than serving half (UDP without TCP).
	if b, err := Start(a.Addr(), zone); err == nil {
		b.Close()
		t.Error("a second server on the same port started")
	}
	c, err := Start("127.0.0.1:0", "Example.Test")
	if err != nil {
		t.Fatal(err)
	}
	if c.Zone() != "example.test." {
		t.Errorf("zone %q", c.Zone())
	}
	addr := c.Addr()
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	// Closed means the port is free again, for TCP at least.
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Errorf("port still held after Close: %v", err)
	} else {
		l.Close()
	}
}

func TestConcurrentUse(t *testing.T) {
	s := start(t)
	r := resolver(s)
	ctx := t.Context()
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Go(func() {
			for j := range 50 {
				mustSet(t, s, Service{Namespace: "kn", Name: "backend", Endpoints: []Endpoint{{IP: fmt.Sprintf("10.0.%d.%d", i, j+1)}}})
				if j%10 == 0 {
					s.SetFailure(0)
				}
			}
		})
		wg.Go(func() {
			for range 50 {
				// Either answer is fine; the race detector checks the rest.
				r.LookupHost(ctx, "backend.kn.svc.cluster.local.")
			}
		})
	}
	wg.Wait()
	if s.Queries() == 0 {
		t.Error("no queries counted")
	}
}
