// Package clusterdns is a small authoritative DNS server that answers the
// record shapes of Kubernetes cluster DNS (the kubernetes/dns specification,
// as CoreDNS serves it) for services set at run time. Discovery tests use it
// to scale record sets and simulate outages, and `make run` uses it so the
// frontend discovers local backends exactly as it would in a cluster.
//
// Names served, below the zone (e.g. cluster.local.):
//
//	<svc>.<ns>.svc                  A/AAAA: the ClusterIP, or one per ready endpoint
//	                                of a headless service (NXDOMAIN when none);
//	                                SRV: every named port
//	_<port>._<proto>.<svc>.<ns>.svc SRV per named port: target <svc>.<ns>.svc for a
//	                                ClusterIP service, <host>.<svc>.<ns>.svc per
//	                                endpoint of a headless one; addresses in the
//	                                additional section
//	<host>.<svc>.<ns>.svc           A/AAAA of a headless service's endpoint, where
//	                                <host> is its hostname (a StatefulSet pod's name)
//	                                or else its IP with dashes (10-244-0-5)
//
// Other names in the zone get NXDOMAIN (NOERROR with no answers for names
// that exist with other types, and for the empty non-terminals such as
// <ns>.svc); names outside it get REFUSED.
package clusterdns

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/miekg/dns"
)

// DefaultTTL is CoreDNS's kubernetes plugin default.
const DefaultTTL = 5

// Drop, given to SetFailure, makes the server answer nothing at all, so
// clients time out: an unreachable DNS server rather than a failing one.
const Drop = -1

// Port is a service port. Only named ports get SRV records.
type Port struct {
	Name     string // e.g. "grpc"
	Protocol string // "tcp" (default) or "udp"
	Port     uint16
}

// Endpoint is a ready endpoint of a service.
type Endpoint struct {
	IP string
	// Hostname, when set, names the endpoint in DNS: a StatefulSet pod with
	// spec.hostname and spec.subdomain. Else the dashed IP does.
	Hostname string
}

// Service is what cluster DNS knows of one Service.
type Service struct {
	Namespace, Name string
	ClusterIP       string // "" or "None": headless
	Ports           []Port
	Endpoints       []Endpoint // ready ones; a headless service answers with these
	TTL             uint32     // 0: DefaultTTL
}

// Headless reports whether s has no cluster IP.
func (s Service) Headless() bool { return s.ClusterIP == "" || s.ClusterIP == "None" }

// Server is a running DNS server. Its methods are safe for concurrent use.
type Server struct {
	zone    string // lower case, fully qualified
	addr    string
	udp     *dns.Server
	tcp     *dns.Server
	queries atomic.Int64

	mu       sync.RWMutex
	services map[string]*service // by "<name>.<ns>"
	failure  int
}

// service is a Service prepared for answering: names lower-cased, addresses
// parsed, per-endpoint names assigned.
type service struct {
	name, ns  string
	headless  bool
	clusterIP netip.Addr
	ports     []Port
	endpoints []endpoint
	ttl       uint32
}

type endpoint struct {
	ip   netip.Addr
	host string // the first label of its name
}

// Start serves zone (e.g. "cluster.local.") over UDP and TCP on the same
// address; a port of 0 picks a free one for both.
func Start(addr, zone string) (*Server, error) {
	zone = dns.CanonicalName(zone)
	if _, ok := dns.IsDomainName(zone); !ok || zone == "." {
		return nil, fmt.Errorf("clusterdns: invalid zone %q", zone)
	}
	pc, l, err := listen(addr)
	if err != nil {
		return nil, err
	}
	s := &Server{zone: zone, addr: pc.LocalAddr().String(), services: map[string]*service{}}
	started := make(chan struct{}, 2)
	notify := func() { started <- struct{}{} }
	s.udp = &dns.Server{PacketConn: pc, Handler: s, NotifyStartedFunc: notify}
	s.tcp = &dns.Server{Listener: l, Handler: s, NotifyStartedFunc: notify}
	errc := make(chan error, 2)
	for _, srv := range []*dns.Server{s.udp, s.tcp} {
		go func() { errc <- srv.ActivateAndServe() }()
	}
	// Wait until both serve, so that Close never races the start.
	for range 2 {
		select {
		case <-started:
		case err := <-errc:
			pc.Close()
			l.Close()
			return nil, fmt.Errorf("clusterdns: serve on %s: %w", s.addr, err)
		}
	}
	return s, nil
}

// listen binds UDP and TCP on one port. With port 0 the kernel picks the UDP
// port, which may be taken for TCP; then it tries again.
func listen(addr string) (net.PacketConn, net.Listener, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, nil, fmt.Errorf("clusterdns: address %q: %w", addr, err)
	}
	var lastErr error
	for range 10 {
		pc, err := net.ListenPacket("udp", addr)
		if err != nil {
			return nil, nil, fmt.Errorf("clusterdns: listen UDP: %w", err)
		}
		_, bound, _ := net.SplitHostPort(pc.LocalAddr().String())
		l, err := net.Listen("tcp", net.JoinHostPort(host, bound))
		if err == nil {
			return pc, l, nil
		}
		pc.Close()
		lastErr = err
		if port != "0" {
			break
		}
	}
	return nil, nil, fmt.Errorf("clusterdns: listen TCP: %w", lastErr)
}

// Addr is the address served, host:port, for UDP and TCP alike.
func (s *Server) Addr() string { return s.addr }

// Zone is the zone served, fully qualified and lower case.
func (s *Server) Zone() string { return s.zone }

// Queries is how many queries the server has received, answered or not.
func (s *Server) Queries() int64 { return s.queries.Load() }

// Close stops serving.
func (s *Server) Close() error {
	return errors.Join(s.udp.Shutdown(), s.tcp.Shutdown())
}

// SetFailure makes every query fail with rcode (e.g. dns.RcodeServerFailure)
// or, with Drop, go unanswered; 0 (dns.RcodeSuccess) restores service.
func (s *Server) SetFailure(rcode int) {
	s.mu.Lock()
	s.failure = rcode
	s.mu.Unlock()
}

// SetService adds svc, or replaces the service of that namespace and name.
// svc is copied: the caller may reuse it.
func (s *Server) SetService(svc Service) error {
	p, err := prepare(svc)
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.services[p.name+"."+p.ns] = p
	s.mu.Unlock()
	return nil
}

// DeleteService removes a service; its names then get NXDOMAIN.
func (s *Server) DeleteService(namespace, name string) {
	s.mu.Lock()
	delete(s.services, strings.ToLower(name)+"."+strings.ToLower(namespace))
	s.mu.Unlock()
}

func prepare(svc Service) (*service, error) {
	p := &service{
		name:     strings.ToLower(svc.Name),
		ns:       strings.ToLower(svc.Namespace),
		headless: svc.Headless(),
		ttl:      svc.TTL,
	}
	where := svc.Namespace + "/" + svc.Name
	if !isLabel(p.name) || !isLabel(p.ns) {
		return nil, fmt.Errorf("clusterdns: service %q: namespace and name must be DNS labels", where)
	}
	if p.ttl == 0 {
		p.ttl = DefaultTTL
	}
	if !p.headless {
		ip, err := netip.ParseAddr(svc.ClusterIP)
		if err != nil {
			return nil, fmt.Errorf("clusterdns: service %q: cluster IP: %w", where, err)
		}
		p.clusterIP = ip.Unmap()
	}
	for _, port := range svc.Ports {
		port.Name = strings.ToLower(port.Name)
		port.Protocol = strings.ToLower(port.Protocol)
		if port.Protocol == "" {
			port.Protocol = "tcp"
		}
		if port.Name != "" && !isLabel(port.Name) {
			return nil, fmt.Errorf("clusterdns: service %q: port name %q is not a DNS label", where, port.Name)
		}
		p.ports = append(p.ports, port)
	}
	for _, ep := range svc.Endpoints {
		ip, err := netip.ParseAddr(ep.IP)
		if err != nil {
			return nil, fmt.Errorf("clusterdns: service %q: endpoint: %w", where, err)
		}
		ip = ip.Unmap()
		host := strings.ToLower(ep.Hostname)
		if host == "" {
			host = strings.NewReplacer(".", "-", ":", "-").Replace(ip.String())
		}
		if !isLabel(host) {
			return nil, fmt.Errorf("clusterdns: service %q: endpoint hostname %q is not a DNS label", where, ep.Hostname)
		}
		p.endpoints = append(p.endpoints, endpoint{ip: ip, host: host})
	}
	return p, nil
}

func isLabel(s string) bool {
	if s == "" || len(s) > 63 || s[0] == '-' || s[len(s)-1] == '-' {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-') {
			return false
		}
	}
	return true
}

// ServeDNS answers one query; it implements dns.Handler.
func (s *Server) ServeDNS(w dns.ResponseWriter, req *dns.Msg) {
	s.queries.Add(1)
	s.mu.RLock()
	failure := s.failure
	s.mu.RUnlock()
	if failure == Drop {
		return
	}
	m := new(dns.Msg)
	m.SetReply(req)
	m.Authoritative = true
	m.RecursionAvailable = false
	switch {
	case failure != 0:
		m.Rcode = failure
	case req.Opcode != dns.OpcodeQuery || len(req.Question) != 1:
		m.Rcode = dns.RcodeNotImplemented
		if len(req.Question) != 1 {
			m.Rcode = dns.RcodeFormatError
		}
		m.Authoritative = false
	default:
		s.answer(m, req.Question[0])
	}
	size := dns.MinMsgSize // 512 without EDNS0
	if opt := req.IsEdns0(); opt != nil {
		size = max(int(opt.UDPSize()), dns.MinMsgSize)
		m.SetEdns0(uint16(size), false)
	}
	if _, tcp := w.LocalAddr().(*net.TCPAddr); tcp {
		size = dns.MaxMsgSize
	}
	// Over UDP a large answer (many endpoints) is cut and marked truncated,
	// so the client asks again over TCP, as with any DNS server.
	m.Truncate(size)
	w.WriteMsg(m)
}

// answer fills m for question q.
func (s *Server) answer(m *dns.Msg, q dns.Question) {
	qname := dns.CanonicalName(q.Name)
	if !dns.IsSubDomain(s.zone, qname) {
		m.Rcode = dns.RcodeRefused
		m.Authoritative = false
		return
	}
	var labels []string
	if qname != s.zone {
		labels = dns.SplitDomainName(strings.TrimSuffix(qname, "."+s.zone))
	}

	s.mu.RLock()
	defer s.mu.RUnlock()
	var rrs, extra []dns.RR
	exists := true
	n := len(labels)
	switch {
	case n == 0: // the zone apex
		if q.Qtype == dns.TypeSOA {
			rrs = []dns.RR{s.soa()}
		}
	case labels[n-1] != "svc":
		exists = false
	case n == 1, n == 2: // svc, <ns>.svc: empty non-terminals while services exist
		exists = s.anyService(func(p *service) bool { return n == 1 || p.ns == labels[0] })
	case n == 3: // <svc>.<ns>.svc
		p := s.services[labels[0]+"."+labels[1]]
		if p == nil || p.headless && len(p.endpoints) == 0 {
			exists = false
			break
		}
		switch q.Qtype {
		case dns.TypeA, dns.TypeAAAA:
			rrs = p.addressRRs(q.Name, q.Qtype)
		case dns.TypeSRV:
			rrs, extra = s.srv(q.Name, p, func(Port) bool { return true })
		}
	case n == 4 && strings.HasPrefix(labels[0], "_"): // _<proto>.<svc>.<ns>.svc: empty non-terminal
		p := s.services[labels[1]+"."+labels[2]]
		exists = p != nil && slices.ContainsFunc(p.ports, func(pt Port) bool { return pt.Name != "" && "_"+pt.Protocol == labels[0] })
	case n == 4: // <host>.<svc>.<ns>.svc
		p := s.services[labels[1]+"."+labels[2]]
		var eps []endpoint
		if p != nil && p.headless {
			for _, ep := range p.endpoints {
				if ep.host == labels[0] {
					eps = append(eps, ep)
				}
			}
		}
		if len(eps) == 0 {
			exists = false
			break
		}
		if q.Qtype == dns.TypeA || q.Qtype == dns.TypeAAAA {
			for _, ep := range eps {
				if rr := addressRR(q.Name, ep.ip, p.ttl, q.Qtype); rr != nil {
					rrs = append(rrs, rr)
				}
			}
		}
	case n == 5 && strings.HasPrefix(labels[0], "_") && strings.HasPrefix(labels[1], "_"): // _<port>._<proto>.<svc>.<ns>.svc
		p := s.services[labels[2]+"."+labels[3]]
		if p == nil || p.headless && len(p.endpoints) == 0 {
			exists = false
			break
		}
		match := func(pt Port) bool { return "_"+pt.Name == labels[0] && "_"+pt.Protocol == labels[1] }
		if !slices.ContainsFunc(p.ports, func(pt Port) bool { return pt.Name != "" && match(pt) }) {
			exists = false
			break
		}
		if q.Qtype == dns.TypeSRV {
			rrs, extra = s.srv(q.Name, p, match)
		}
	default:
		exists = false
	}
	if !exists {
		m.Rcode = dns.RcodeNameError
	}
	m.Answer, m.Extra = rrs, extra
	if len(rrs) == 0 {
		// NXDOMAIN or NODATA: the SOA says how long to cache the absence.
		m.Ns = []dns.RR{s.soa()}
	}
}

func (s *Server) anyService(f func(*service) bool) bool {
	for _, p := range s.services {
		if f(p) {
			return true
		}
	}
	return false
}

// fqdn is the service's name in the zone.
func (s *Server) fqdn(p *service) string { return p.name + "." + p.ns + ".svc." + s.zone }

// addressRRs are the service name's A or AAAA records.
func (p *service) addressRRs(name string, qtype uint16) []dns.RR {
	var rrs []dns.RR
	if !p.headless {
		if rr := addressRR(name, p.clusterIP, p.ttl, qtype); rr != nil {
			rrs = append(rrs, rr)
		}
		return rrs
	}
	for _, ep := range p.endpoints {
		if rr := addressRR(name, ep.ip, p.ttl, qtype); rr != nil {
			rrs = append(rrs, rr)
		}
	}
	return rrs
}

// addressRR is ip as an A or AAAA record, nil if ip is of the other family.
func addressRR(name string, ip netip.Addr, ttl uint32, qtype uint16) dns.RR {
	switch {
	case qtype == dns.TypeA && ip.Is4():
		return &dns.A{Hdr: header(name, dns.TypeA, ttl), A: ip.AsSlice()}
	case qtype == dns.TypeAAAA && ip.Is6():
		return &dns.AAAA{Hdr: header(name, dns.TypeAAAA, ttl), AAAA: ip.AsSlice()}
	}
	return nil
}

// srv answers SRV records for the service's named ports that match, with the
// targets' addresses as additional records.
func (s *Server) srv(name string, p *service, match func(Port) bool) (rrs, extra []dns.RR) {
	type target struct {
		name string
		ip   netip.Addr
	}
	var targets []target
	if p.headless {
		for _, ep := range p.endpoints {
			targets = append(targets, target{ep.host + "." + s.fqdn(p), ep.ip})
		}
	} else {
		targets = []target{{s.fqdn(p), p.clusterIP}}
	}
	// Equal weights summing to about 100, as CoreDNS gives.
	weight := uint16(max(1, 100/len(targets)))
	added := map[string]bool{}
	for _, pt := range p.ports {
		if pt.Name == "" || !match(pt) {
			continue
		}
		for _, t := range targets {
			rrs = append(rrs, &dns.SRV{
				Hdr:      header(name, dns.TypeSRV, p.ttl),
				Priority: 0,
				Weight:   weight,
				Port:     pt.Port,
				Target:   t.name,
			})
			key := t.name + "/" + t.ip.String()
			if added[key] {
				continue
			}
			added[key] = true
			qtype := dns.TypeA
			if t.ip.Is6() {
				qtype = dns.TypeAAAA
			}
			extra = append(extra, addressRR(t.name, t.ip, p.ttl, qtype))
		}
	}
	return rrs, extra
}

func (s *Server) soa() dns.RR {
	return &dns.SOA{
		Hdr:     header(s.zone, dns.TypeSOA, DefaultTTL),
		Ns:      "ns.dns." + s.zone,
		Mbox:    "hostmaster." + s.zone,
		Serial:  1,
		Refresh: 7200,
		Retry:   1800,
		Expire:  86400,
		Minttl:  DefaultTTL,
	}
}

func header(name string, rrtype uint16, ttl uint32) dns.RR_Header {
	return dns.RR_Header{Name: name, Rrtype: rrtype, Class: dns.ClassINET, Ttl: ttl}
}

// Pods are n ready endpoints as a headless Service's pods look: 10.244.0.10,
// .11, ... named <prefix>-0, <prefix>-1, ... (their per-pod DNS names).
func Pods(prefix string, n int) []Endpoint {
	eps := make([]Endpoint, n)
	for i := range eps {
		eps[i] = Endpoint{IP: fmt.Sprintf("10.244.0.%d", 10+i), Hostname: fmt.Sprintf("%s-%d", prefix, i)}
	}
	return eps
}
