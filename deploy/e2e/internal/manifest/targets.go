package manifest

import (
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
)

// Target is one frontend target as the frontend's TARGETS env (or --target
// flag) spells it: name=scheme://[server]/<what>. Only what the static
// checks need is parsed here; the frontend's discovery package owns the
// real parser.
type Target struct {
	Name   string
	Scheme string // dns, srv, statefulset, static
	Server string // DNS server; empty means the pod's resolver
	Host   string // DNS name (dns, statefulset) or SRV owner name (srv)
	Port   int    // 0 for srv and static
	Query  url.Values
}

// ParseTargets parses the space-separated name=spec items of TARGETS.
func ParseTargets(s string) ([]Target, error) {
	var out []Target
	for _, item := range strings.Fields(s) {
		name, spec, ok := strings.Cut(item, "=")
		if !ok || name == "" || spec == "" {
			return nil, fmt.Errorf("target %q: want name=spec", item)
		}
		t, err := parseSpec(spec)
		if err != nil {
			return nil, fmt.Errorf("target %q: %w", name, err)
		}
		t.Name = name
		out = append(out, t)
	}
	return out, nil
}

func parseSpec(spec string) (Target, error) {
	u, err := url.Parse(spec)
	if err != nil {
		return Target{}, fmt.Errorf("parse %q: %w", spec, err)
	}
	t := Target{Scheme: u.Scheme, Server: u.Host, Query: u.Query()}
	rest := strings.TrimPrefix(u.Path, "/")
	switch u.Scheme {
	case "srv", "static":
		t.Host = rest
	case "dns", "statefulset":
		host, port, err := net.SplitHostPort(rest)
		if err != nil {
			return Target{}, fmt.Errorf("%s target %q: want host:port: %w", u.Scheme, rest, err)
		}
		t.Host = host
		if t.Port, err = strconv.Atoi(port); err != nil || t.Port <= 0 || t.Port > 65535 {
			return Target{}, fmt.Errorf("%s target %q: bad port %q", u.Scheme, rest, port)
		}
	default:
		return Target{}, fmt.Errorf("unknown scheme %q in %q (want dns, srv, statefulset or static)", u.Scheme, spec)
	}
	if t.Host == "" {
		return Target{}, fmt.Errorf("%s target %q names no host", u.Scheme, spec)
	}
	return t, nil
}

// serviceRef splits a cluster DNS name <svc>[.<ns>[.svc[.cluster.local]]]
// into the Service and namespace it names; a short name is resolved in the
// frontend's own namespace, as the pod's search path would.
func serviceRef(host, defaultNS string) (svc, ns string, err error) {
	h := strings.TrimSuffix(host, ".")
	h = strings.TrimSuffix(h, ".cluster.local")
	h = strings.TrimSuffix(h, ".svc")
	parts := strings.Split(h, ".")
	switch len(parts) {
	case 1:
		return parts[0], defaultNS, nil
	case 2:
		return parts[0], parts[1], nil
	default:
		return "", "", fmt.Errorf("%q is not a Service name (<svc>.<ns>.svc.cluster.local)", host)
	}
}
