package discovery

import (
	"errors"
	"net"
	"net/netip"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/knowingnode/knowingnode/harness/clusterdns"
)

// FuzzParseTarget: any string either fails with an error naming the target,
// or gives a spec whose parts are within their limits and which parses again
// to itself.
func FuzzParseTarget(f *testing.F) {
	for _, s := range []string{
		"a=dns:///backend.ns.svc.cluster.local:9090",
		"a=backend:9090",
		"a=dns://10.96.0.10/backend:9090",
		"a=dns://[::1]:53/backend:9090",
		"a=srv:///_grpc._tcp.backend.ns.svc.cluster.local",
		"a=statefulset://127.0.0.1:1053/web.web-hl.ns.svc.cluster.local:9090?replicas=3&port-name=grpc",
		"a=static:///10.0.0.1:9090,[fd00::1]:9090",
		"a=static:///", "a=ftp:///x", "=x", "a=dns:///x:0", "a=dns:///x:65536", "a=dns://u@h/x:1",
		"a=statefulset:///web.x:1?replicas=1001", "a=dns:///x:1#f", "a=%zz", "a=dns:///x:1?x=1",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		spec, err := ParseTarget(s)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "target ") {
				t.Errorf("ParseTarget(%q): error %q does not start by naming the target", s, err)
			}
			return
		}
		if !targetName.MatchString(spec.Name) {
			t.Errorf("ParseTarget(%q): name %q", s, spec.Name)
		}
		if spec.Server != "" {
			checkHostPort(t, s, "server", spec.Server)
		}
		switch spec.QType {
		case A, StatefulSet:
			if spec.Host == "" {
				t.Errorf("ParseTarget(%q): empty host", s)
			}
			checkHostPort(t, s, "port", net.JoinHostPort("h", spec.Port))
			if spec.Replicas < 0 || spec.Replicas > MaxReplicas {
				t.Errorf("ParseTarget(%q): replicas %d", s, spec.Replicas)
			}
		case SRV:
			if spec.Host == "" || strings.Contains(spec.Host, ":") {
				t.Errorf("ParseTarget(%q): SRV name %q", s, spec.Host)
			}
		case Static:
			if len(spec.Addrs) == 0 || len(spec.Addrs) > MaxStatic {
				t.Errorf("ParseTarget(%q): %d addresses", s, len(spec.Addrs))
			}
			for _, a := range spec.Addrs {
				checkHostPort(t, s, "address", a)
			}
		default:
			t.Errorf("ParseTarget(%q): query type %q", s, spec.QType)
		}
		_ = spec.Query()
		again, err := ParseTarget(spec.Name + "=" + spec.Raw)
		if err != nil || !reflect.DeepEqual(again, spec) {
			t.Errorf("ParseTarget(%q) = %+v; parsing it again gave %+v, %v", s, spec, again, err)
		}
	})
}

func checkHostPort(t *testing.T, input, what, hp string) {
	t.Helper()
	host, port, err := net.SplitHostPort(hp)
	n, perr := strconv.Atoi(port)
	if err != nil || host == "" || perr != nil || n < 1 || n > 65535 {
		t.Errorf("ParseTarget(%q): %s %q is not host:port with a port in 1..65535", input, what, hp)
	}
}

// FuzzResolveClusterDNS serves a fuzzed Service from a real DNS server and
// resolves it in every mode: the answers either resolve or say "no records"
// (the server is healthy), and every endpoint is an address the DNS server
// gave, with a dialable port, in a stable order.
func FuzzResolveClusterDNS(f *testing.F) {
	f.Add(uint8(3), []byte{10, 244, 0, 10, 10, 244, 0, 11, 10, 244, 0, 12}, "web-0,web-1,web-2", uint16(9090), true, uint8(0))
	f.Add(uint8(2), []byte{10, 244, 1, 7, 10, 244, 2, 9}, "", uint16(9090), true, uint8(5))
	f.Add(uint8(1), []byte{0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}, "web-7", uint16(1), true, uint8(8))
	f.Add(uint8(0), []byte{10, 96, 0, 20}, "", uint16(9090), false, uint8(0))
	f.Add(uint8(4), []byte{10, 0, 0, 1, 10, 0, 0, 1}, "web-0,web-0,web-99999999999999999999", uint16(0), true, uint8(0))
	server, err := clusterdns.Start("127.0.0.1:0", "cluster.local.")
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { server.Close() })
	res := NewResolver(NetLookuper(server.Addr()))
	f.Fuzz(func(t *testing.T, n uint8, ipBytes []byte, hostnames string, port uint16, headless bool, replicas uint8) {
		svc := clusterdns.Service{Namespace: "ns", Name: "web", ClusterIP: "None",
			Ports: []clusterdns.Port{{Name: "grpc", Protocol: "tcp", Port: port}}}
		given := map[string]bool{}
		names := strings.Split(hostnames, ",")
		for i := range int(n % 16) {
			ip := endpointIP(ipBytes, i)
			ep := clusterdns.Endpoint{IP: ip.String()}
			if i < len(names) {
				ep.Hostname = names[i]
			}
			svc.Endpoints = append(svc.Endpoints, ep)
			given[ip.String()] = true
		}
		if !headless {
			ip := endpointIP(ipBytes, 0)
			svc.ClusterIP, svc.Endpoints = ip.String(), nil
			given = map[string]bool{ip.String(): true}
		}
		if err := server.SetService(svc); err != nil {
			return // not a Service cluster DNS could hold
		}
		specs := []string{
			"t=dns://SERVER/web.ns.svc.cluster.local:9090",
			"t=srv://SERVER/_grpc._tcp.web.ns.svc.cluster.local",
			"t=statefulset://SERVER/web.web.ns.svc.cluster.local:9090",
		}
		if r := int(replicas % 20); r > 0 {
			specs = append(specs, "t=statefulset://SERVER/web.web.ns.svc.cluster.local:9090?replicas="+strconv.Itoa(r))
		}
		for _, s := range specs {
			spec, err := ParseTarget(strings.ReplaceAll(s, "SERVER", server.Addr()))
			if err != nil {
				t.Fatal(err)
			}
			eps, err := res.Resolve(t.Context(), spec)
			if err != nil {
				// A zone whose SRV records say port 0 is broken, and said so.
				brokenZone := port == 0 && strings.Contains(err.Error(), "has port 0")
				if !errors.Is(err, ErrNoRecords) && !brokenZone {
					t.Errorf("%s over %+v: %v; want endpoints or no records from a healthy server", s, svc, err)
				}
				continue
			}
			for _, ep := range eps {
				host, p, err := net.SplitHostPort(ep.Addr)
				pn, _ := strconv.Atoi(p)
				if err != nil || !given[host] || pn < 1 || pn > 65535 {
					t.Errorf("%s over %+v: endpoint %q is not a given address with a port in 1..65535", s, svc, ep.Addr)
				}
				if !strings.HasSuffix(ep.DNSName, ".cluster.local") {
					t.Errorf("%s: endpoint %v named outside the zone", s, ep)
				}
			}
			again, err := res.Resolve(t.Context(), spec)
			if err != nil || !slices.Equal(again, eps) {
				t.Errorf("%s over %+v: %v, then %v, %v; want a stable answer", s, svc, eps, again, err)
			}
		}
	})
}

// endpointIP takes the i-th address from b: 4 bytes an IPv4 address, 16 an
// IPv6 one when b is long enough for no IPv4 reading.
func endpointIP(b []byte, i int) netip.Addr {
	if len(b) >= 16 && len(b)%16 == 0 && len(b)%4 == 0 && b[0] >= 0xfc {
		var a [16]byte
		copy(a[:], b[(i*16)%len(b):])
		return netip.AddrFrom16(a)
	}
	var a [4]byte
	if len(b) > 0 {
		for j := range a {
			a[j] = b[(i*4+j)%len(b)]
		}
	}
	return netip.AddrFrom4(a)
}
