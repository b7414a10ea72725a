package manifest

import (
	"fmt"
	"strings"

	"github.com/knowingnode/knowingnode/internal/discovery"
)

// ParseTargets parses TARGETS (space-separated name=spec items) with the
// frontend's own parser, so a spec the frontend would refuse at start-up
// fails here first.
func ParseTargets(s string) ([]discovery.Spec, error) {
	var out []discovery.Spec
	for _, item := range strings.Fields(s) {
		sp, err := discovery.ParseTarget(item)
		if err != nil {
			return nil, err
		}
		out = append(out, sp)
	}
	return out, nil
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
