// Package discovery finds a target's backends through DNS, the way a pod in
// the cluster would: the A/AAAA records of a Service, the SRV records of a
// headless Service's named port, or a StatefulSet's per-pod names; or from
// the API server, by watching a Service's EndpointSlices (kubernetes.go).
//
// A Target keeps one spec's endpoints fresh; Builders makes gRPC resolvers
// of it, so that any gRPC-Go client dials "srv:///…", "kubernetes:///…" and
// the rest with the balancing policy it likes (grpc.go). README.md lists the
// schemes, options and metrics.
package discovery

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
)

// Endpoint is one backend address and the DNS name it was found under.
type Endpoint struct {
	Addr    string // host:port, as dialed
	DNSName string // empty for static addresses
	// Slice is what the EndpointSlices say of it; zero unless the target
	// is a kubernetes:/// one.
	Slice SliceInfo
}

// Callable reports whether fan-out should call the endpoint: DNS lists only
// ready endpoints, EndpointSlices list every one with its conditions.
func (e Endpoint) Callable() bool { return !e.Slice.Known || e.Slice.Ready }

// Lookuper is the part of *net.Resolver discovery uses.
type Lookuper interface {
	LookupIPAddr(ctx context.Context, host string) ([]net.IPAddr, error)
	LookupSRV(ctx context.Context, service, proto, name string) (string, []*net.SRV, error)
}

// NetLookuper returns a resolver asking server (host:port) over UDP, and TCP
// for truncated answers; empty server means the system's resolver, with its
// search path, so short names work inside a pod.
func NetLookuper(server string) Lookuper {
	if server == "" {
		return net.DefaultResolver
	}
	return &serverLookuper{server: server, r: &net.Resolver{
		PreferGo: true,
		Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, server)
		},
	}}
}

// serverLookuper asks one DNS server. Go's resolver names the server of
// /etc/resolv.conf in its errors, whatever Dial connected to; these errors
// name the server really asked.
type serverLookuper struct {
	server string
	r      *net.Resolver
}

func (l *serverLookuper) LookupIPAddr(ctx context.Context, host string) ([]net.IPAddr, error) {
	ips, err := l.r.LookupIPAddr(ctx, host)
	return ips, l.named(err)
}

func (l *serverLookuper) LookupSRV(ctx context.Context, service, proto, name string) (string, []*net.SRV, error) {
	cname, recs, err := l.r.LookupSRV(ctx, service, proto, name)
	return cname, recs, l.named(err)
}

func (l *serverLookuper) named(err error) error {
	var dnsErr *net.DNSError
	if !errors.As(err, &dnsErr) {
		return err
	}
	named := *dnsErr // a copy: the resolver may share its errors
	named.Server = l.server
	return &named
}

// ErrNoRecords marks an authoritative "no such name" answer: the set of
// endpoints is really empty (a headless Service without ready pods), unlike
// a failed lookup, after which the last known endpoints are kept.
var ErrNoRecords = errors.New("no records")

// Resolver resolves specs into endpoints with one Lookuper.
type Resolver struct {
	lookup Lookuper
}

// NewResolver returns a Resolver over l.
func NewResolver(l Lookuper) *Resolver { return &Resolver{lookup: l} }

// Resolve returns the endpoints of spec, in a stable order: by address for A,
// by DNS name for SRV, by ordinal for StatefulSet, as given for Static.
func (r *Resolver) Resolve(ctx context.Context, spec Spec) ([]Endpoint, error) {
	switch spec.QType {
	case Static:
		eps := make([]Endpoint, len(spec.Addrs))
		for i, a := range spec.Addrs {
			eps[i] = Endpoint{Addr: a}
		}
		return eps, nil
	case A:
		eps, err := r.lookupIPs(ctx, spec.Host, spec.Port)
		if err != nil {
			return nil, err
		}
		slices.SortFunc(eps, func(a, b Endpoint) int { return cmp.Compare(a.Addr, b.Addr) })
		return eps, nil
	case SRV:
		return r.resolveSRV(ctx, spec.Host)
	case StatefulSet:
		return r.resolveStatefulSet(ctx, spec)
	}
	return nil, fmt.Errorf("resolve %q: unknown query type %q", spec.Raw, spec.QType)
}

func (r *Resolver) lookupIPs(ctx context.Context, host, port string) ([]Endpoint, error) {
	ips, err := r.lookup.LookupIPAddr(ctx, host)
	if err != nil {
		return nil, wrapLookup("A/AAAA", host, err)
	}
	eps := make([]Endpoint, 0, len(ips))
	name := strings.TrimSuffix(host, ".")
	for _, ip := range ips {
		eps = append(eps, Endpoint{Addr: net.JoinHostPort(ip.String(), port), DNSName: name})
	}
	return eps, nil
}

func (r *Resolver) srv(ctx context.Context, name string) ([]*net.SRV, error) {
	_, recs, err := r.lookup.LookupSRV(ctx, "", "", name)
	if err != nil {
		return nil, wrapLookup("SRV", name, err)
	}
	return recs, nil
}

func (r *Resolver) resolveSRV(ctx context.Context, name string) ([]Endpoint, error) {
	recs, err := r.srv(ctx, name)
	if err != nil {
		return nil, err
	}
	var eps []Endpoint
	for _, rec := range recs {
		if rec.Port == 0 {
			// No service there (RFC 2782 gives port 0 no meaning), and not
			// dialable: a broken zone, reported, the last good set kept.
			return nil, fmt.Errorf("SRV %s: the record for %s has port 0", name, rec.Target)
		}
		// Go's resolver drops the additional section, so each target is
		// looked up; a trailing dot keeps the search path out of it.
		host := dotted(rec.Target)
		got, err := r.lookupIPs(ctx, host, strconv.Itoa(int(rec.Port)))
		if errors.Is(err, ErrNoRecords) {
			continue // the pod went away between the two answers
		}
		if err != nil {
			return nil, fmt.Errorf("SRV %s: %w", name, err)
		}
		eps = append(eps, got...)
	}
	slices.SortFunc(eps, func(a, b Endpoint) int {
		return cmp.Or(cmp.Compare(a.DNSName, b.DNSName), cmp.Compare(a.Addr, b.Addr))
	})
	return eps, nil
}

func (r *Resolver) resolveStatefulSet(ctx context.Context, spec Spec) ([]Endpoint, error) {
	var ordinals []int
	if spec.Replicas > 0 {
		for i := range spec.Replicas {
			ordinals = append(ordinals, i)
		}
	} else {
		name := "_" + spec.PortName + "._tcp." + spec.Host
		recs, err := r.srv(ctx, name)
		if err != nil {
			return nil, err
		}
		prefix := spec.StatefulSet + "-"
		for _, rec := range recs {
			first, _, _ := strings.Cut(rec.Target, ".")
			if n, err := strconv.Atoi(strings.TrimPrefix(first, prefix)); err == nil && strings.HasPrefix(first, prefix) && n >= 0 {
				ordinals = append(ordinals, n)
			}
		}
		slices.Sort(ordinals)
		ordinals = slices.Compact(ordinals)
	}
	var eps []Endpoint
	var noRecords error
	for _, i := range ordinals {
		host := dotted(spec.StatefulSet + "-" + strconv.Itoa(i) + "." + spec.Host)
		got, err := r.lookupIPs(ctx, host, spec.Port)
		if errors.Is(err, ErrNoRecords) {
			noRecords = err
			continue // that ordinal is not ready (or not there): not an endpoint now
		}
		if err != nil {
			return nil, err
		}
		eps = append(eps, got...)
	}
	if len(eps) == 0 {
		if noRecords == nil {
			noRecords = ErrNoRecords
		}
		// The last answer says which server said so.
		return nil, fmt.Errorf("StatefulSet %s: none of the per-pod names %s resolved: %w", spec.StatefulSet, spec.Query(), noRecords)
	}
	return eps, nil
}

func dotted(name string) string {
	if strings.HasSuffix(name, ".") {
		return name
	}
	return name + "."
}

// wrapLookup names the query and marks NXDOMAIN as ErrNoRecords.
func wrapLookup(kind, name string, err error) error {
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) && dnsErr.IsNotFound {
		return fmt.Errorf("lookup %s %s: %w: %w", kind, name, ErrNoRecords, err)
	}
	return fmt.Errorf("lookup %s %s: %w", kind, name, err)
}
