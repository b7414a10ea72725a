package discovery

import (
	"fmt"
	"net"
	"net/netip"
	"strings"
)

// Service returns the Kubernetes Service a spec names, when it names one
// with its namespace: a kubernetes:/// target, or a DNS, SRV or StatefulSet
// name inside <service>.<namespace>.svc.<zone> (SRV names start with
// _<port>._<proto>.). Short names without a namespace name none: which
// namespace the search path would pick is not known here.
func (s Spec) Service() (name, namespace string, ok bool) {
	switch s.QType {
	case Kubernetes:
		return s.Host, s.Namespace, true
	case A, SRV, StatefulSet:
	default:
		return "", "", false
	}
	labels := strings.Split(strings.TrimSuffix(strings.ToLower(s.Host), "."), ".")
	for len(labels) > 0 && strings.HasPrefix(labels[0], "_") {
		labels = labels[1:] // SRV's _grpc._tcp.
	}
	if len(labels) < 3 || labels[2] != "svc" {
		return "", "", false
	}
	return labels[0], labels[1], true
}

// Comparison is what DNS answered for a Service beside what its
// EndpointSlices hold, by IP (the ports of the two views may differ in
// form: a number against a port name).
type Comparison struct {
	DNS int // addresses DNS answered
	API int // endpoints the EndpointSlices hold
	// Of API: not ready (and not terminating), and terminating.
	NotReady, Terminating int
	// IPs only DNS answered: a stale answer, or a ClusterIP's virtual IP.
	OnlyDNS []string
	// IPs only the API holds, each with its condition: "10.0.0.1 (not
	// ready)", "(terminating)", or "(ready)" when DNS has not caught up.
	OnlyAPI []string
	// IPs DNS answered although the API says they are not ready
	// (publishNotReadyAddresses, or DNS behind).
	DNSNotReady []string
	// Agree is true when DNS answered exactly the ready endpoints.
	Agree bool
}

// Compare compares the endpoints DNS discovery found with those of a
// kubernetes:/// target of the same Service.
func Compare(dns, api []Endpoint) Comparison {
	c := Comparison{DNS: len(dns), API: len(api)}
	inDNS := map[string]bool{}
	var dnsOrder []string
	for _, e := range dns {
		ip := ipOf(e.Addr)
		if !inDNS[ip] {
			inDNS[ip] = true
			dnsOrder = append(dnsOrder, ip)
		}
	}
	inAPI := map[string]bool{}
	c.Agree = true
	for _, e := range api {
		ip := ipOf(e.Addr)
		inAPI[ip] = true
		ready := !e.Slice.Known || e.Slice.Ready
		cond := "ready"
		switch {
		case e.Slice.Terminating:
			c.Terminating++
			cond = "terminating"
		case !ready:
			c.NotReady++
			cond = "not ready"
		}
		switch {
		case !inDNS[ip]:
			c.OnlyAPI = append(c.OnlyAPI, ip+" ("+cond+")")
			if ready {
				c.Agree = false // a ready endpoint DNS does not answer yet
			}
		case !ready:
			c.DNSNotReady = append(c.DNSNotReady, ip)
			c.Agree = false
		}
	}
	for _, ip := range dnsOrder {
		if !inAPI[ip] {
			c.OnlyDNS = append(c.OnlyDNS, ip)
			c.Agree = false
		}
	}
	return c
}

// String is the comparison in one line, e.g. "DNS: 3 addresses; API: 4
// endpoints, 1 not ready; only in the API: 10.244.0.13 (not ready)".
func (c Comparison) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "DNS: %s; API: %s", plural(c.DNS, "address", "addresses"), plural(c.API, "endpoint", "endpoints"))
	if c.NotReady > 0 {
		fmt.Fprintf(&b, ", %d not ready", c.NotReady)
	}
	if c.Terminating > 0 {
		fmt.Fprintf(&b, ", %d terminating", c.Terminating)
	}
	if c.Agree {
		b.WriteString("; DNS answers exactly the ready endpoints")
	}
	if len(c.OnlyDNS) > 0 {
		b.WriteString("; only in DNS: " + strings.Join(c.OnlyDNS, ", "))
		if c.DNS == 1 && c.API > 0 && len(c.OnlyDNS) == 1 {
			b.WriteString(" (a ClusterIP Service's virtual IP?)")
		}
	}
	if len(c.OnlyAPI) > 0 {
		b.WriteString("; only in the API: " + strings.Join(c.OnlyAPI, ", "))
	}
	if len(c.DNSNotReady) > 0 {
		b.WriteString("; in DNS though not ready: " + strings.Join(c.DNSNotReady, ", "))
	}
	return b.String()
}

func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}

// ipOf is the IP of host:port in canonical form, so that two spellings of
// one IPv6 address compare equal; the address itself when it is not one.
func ipOf(addr string) string {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		host = addr
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		return ip.Unmap().String()
	}
	return host
}
