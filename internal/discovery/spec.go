package discovery

import (
	"fmt"
	"net"
	"net/url"
	"regexp"
	"strconv"
	"strings"
)

// QType is how a target finds its endpoints.
type QType string

// Query kinds, named as in target specs.
const (
	A           QType = "dns"         // A/AAAA of a Service name
	SRV         QType = "srv"         // SRV of a headless Service's named port
	StatefulSet QType = "statefulset" // <sts>-<ordinal>.<service> per-pod names
	Static      QType = "static"      // a fixed address list
	Kubernetes  QType = "kubernetes"  // a Service's EndpointSlices, from the API server
)

// Limits of a spec.
const (
	MaxReplicas = 1000
	MaxStatic   = 1000
)

// Spec is a parsed target: what to query, where, and how.
type Spec struct {
	Name   string // the target's name, chosen by the operator
	Raw    string // the spec as given
	QType  QType
	Server string // DNS server host:port; empty for the system resolver

	// A and StatefulSet: the name (for StatefulSet, the governing Service's
	// domain) and the port to dial. SRV: Host is the whole SRV name.
	Host string
	Port string

	StatefulSet string // the StatefulSet's name: per-pod names are <StatefulSet>-<i>.<Host>
	Replicas    int    // StatefulSet: ordinals 0..Replicas-1; 0 learns them from SRV
	PortName    string // StatefulSet without Replicas: the named port whose SRV lists the pods

	Addrs []string // Static

	// Kubernetes: the Service is Host, in Namespace; Port is a port name
	// or number.
	Namespace string
}

var targetName = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)

// ParseTarget parses "name=spec", where spec is one of
//
//	dns://[server]/<name>:<port>        (or just <name>:<port>)
//	srv://[server]/_<port>._tcp.<service>.<namespace>.svc.<zone>
//	statefulset://[server]/<sts>.<service>.<namespace>.svc.<zone>:<port>[?replicas=N][&port-name=grpc]
//	static:///<host:port>[,<host:port>...]
//	kubernetes:///<service>.<namespace>:<port name or number>
func ParseTarget(s string) (Spec, error) {
	name, raw, ok := strings.Cut(s, "=")
	if !ok {
		return Spec{}, fmt.Errorf("target %q: want name=spec, e.g. backend=dns:///backend.default.svc.cluster.local:9090", s)
	}
	if !targetName.MatchString(name) {
		return Spec{}, fmt.Errorf("target %q: name %q must be 1-63 lower-case letters, digits or '-'", s, name)
	}
	spec, err := ParseSpec(raw)
	if err != nil {
		return Spec{}, fmt.Errorf("target %q: %w", name, err)
	}
	spec.Name = name
	return spec, nil
}

// ParseSpec parses the spec part of a target; see ParseTarget.
func ParseSpec(raw string) (Spec, error) {
	sp := Spec{Raw: raw}
	if !strings.Contains(raw, "://") {
		raw = "dns:///" + raw
	}
	u, err := url.Parse(raw)
	if err != nil {
		return sp, fmt.Errorf("spec %q: %w", sp.Raw, err)
	}
	if u.User != nil || u.Fragment != "" {
		return sp, fmt.Errorf("spec %q: user info and fragments are not allowed", sp.Raw)
	}
	sp.QType = QType(u.Scheme)
	if u.Host != "" {
		if sp.QType == Static {
			return sp, fmt.Errorf("spec %q: static targets take no DNS server (write static:///addr,addr)", sp.Raw)
		}
		if sp.QType == Kubernetes {
			return sp, fmt.Errorf("spec %q: kubernetes targets take no server: the API server comes from --kubeconfig or the in-cluster config (write kubernetes:///service.namespace:port)", sp.Raw)
		}
		if sp.Server, err = hostPort(u.Host, "53"); err != nil {
			return sp, fmt.Errorf("spec %q: DNS server: %w", sp.Raw, err)
		}
	}
	path := strings.TrimPrefix(u.Path, "/")
	if path == "" {
		return sp, fmt.Errorf("spec %q: nothing to resolve after the scheme", sp.Raw)
	}
	q := u.Query()
	allowed := map[string]bool{}
	switch sp.QType {
	case A:
		if sp.Host, sp.Port, err = namePort(path); err != nil {
			return sp, fmt.Errorf("spec %q: %w", sp.Raw, err)
		}
	case SRV:
		if strings.Contains(path, ":") {
			return sp, fmt.Errorf("spec %q: an SRV name takes no port: the records carry it", sp.Raw)
		}
		sp.Host = path
	case StatefulSet:
		if sp.Host, sp.Port, err = namePort(path); err != nil {
			return sp, fmt.Errorf("spec %q: %w", sp.Raw, err)
		}
		sts, svc, ok := strings.Cut(sp.Host, ".")
		if !ok || sts == "" || svc == "" {
			return sp, fmt.Errorf("spec %q: want <statefulset>.<service domain>:<port>", sp.Raw)
		}
		sp.StatefulSet, sp.Host = sts, svc
		allowed["replicas"], allowed["port-name"] = true, true
		if r := q.Get("replicas"); r != "" {
			n, err := strconv.Atoi(r)
			if err != nil || n < 1 || n > MaxReplicas {
				return sp, fmt.Errorf("spec %q: replicas=%q: want 1..%d", sp.Raw, r, MaxReplicas)
			}
			sp.Replicas = n
		}
		sp.PortName = q.Get("port-name")
		if sp.PortName == "" {
			sp.PortName = "grpc"
		}
	case Static:
		for a := range strings.SplitSeq(path, ",") {
			hp, err := hostPort(a, "")
			if err != nil {
				return sp, fmt.Errorf("spec %q: address %q: %w", sp.Raw, a, err)
			}
			sp.Addrs = append(sp.Addrs, hp)
		}
		if len(sp.Addrs) > MaxStatic {
			return sp, fmt.Errorf("spec %q: %d addresses, at most %d", sp.Raw, len(sp.Addrs), MaxStatic)
		}
	case Kubernetes:
		if err := parseKubernetes(&sp, path); err != nil {
			return sp, fmt.Errorf("spec %q: %w", sp.Raw, err)
		}
	default:
		return sp, fmt.Errorf("spec %q: unknown scheme %q: want dns, srv, statefulset, static or kubernetes", sp.Raw, u.Scheme)
	}
	for k := range q {
		if !allowed[k] {
			return sp, fmt.Errorf("spec %q: unknown parameter %q", sp.Raw, k)
		}
	}
	return sp, nil
}

// Query is the DNS name the spec asks about, for display.
func (s Spec) Query() string {
	switch s.QType {
	case StatefulSet:
		if s.Replicas > 0 {
			return fmt.Sprintf("%s-{0..%d}.%s", s.StatefulSet, s.Replicas-1, s.Host)
		}
		return fmt.Sprintf("_%s._tcp.%s -> %s-<i>.%s", s.PortName, s.Host, s.StatefulSet, s.Host)
	case Static:
		return strings.Join(s.Addrs, ",")
	case Kubernetes:
		return kubernetesQuery(s)
	}
	return s.Host
}

func namePort(s string) (host, port string, err error) {
	host, port, err = net.SplitHostPort(s)
	if err != nil {
		return "", "", fmt.Errorf("want <name>:<port>: %w", err)
	}
	if host == "" {
		return "", "", fmt.Errorf("empty name in %q", s)
	}
	if err := checkPort(port); err != nil {
		return "", "", err
	}
	return host, port, nil
}

func hostPort(s, defaultPort string) (string, error) {
	host, port, err := net.SplitHostPort(s)
	if err != nil && defaultPort != "" && !strings.Contains(s, ":") {
		host, port, err = s, defaultPort, nil
	}
	if err != nil {
		return "", fmt.Errorf("want host:port: %w", err)
	}
	if host == "" {
		return "", fmt.Errorf("empty host in %q", s)
	}
	if err := checkPort(port); err != nil {
		return "", err
	}
	return net.JoinHostPort(host, port), nil
}

func checkPort(p string) error {
	n, err := strconv.Atoi(p)
	if err != nil || n < 1 || n > 65535 {
		return fmt.Errorf("port %q: want 1..65535", p)
	}
	return nil
}
