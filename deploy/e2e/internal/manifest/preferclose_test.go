package manifest

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
)

// The prefer-close component, added to an overlay, sets trafficDistribution
// PreferClose on each backend Service and on nothing else (the frontends'
// Services serve people and load tools, not zone-local callers), and the
// overlay still passes every check.
func TestPreferCloseComponent(t *testing.T) {
	for _, overlay := range []string{"deployment", "statefulset", "daemonset", "all"} {
		t.Run(overlay, func(t *testing.T) {
			_, set := renderWith(t, overlay, "prefer-close")
			if err := Check(set, exempt); err != nil {
				t.Fatalf("the overlay with the component fails the static checks:\n%v", err)
			}
			backends := 0
			for _, svc := range set.Services {
				backend := svc.Labels["component"] == "backend"
				if backend {
					backends++
				}
				got := ""
				if svc.Spec.TrafficDistribution != nil {
					got = *svc.Spec.TrafficDistribution
				}
				want := ""
				if backend {
					want = corev1.ServiceTrafficDistributionPreferClose
				}
				if got != want {
					t.Errorf("Service %s/%s: trafficDistribution %q, want %q", svc.Namespace, svc.Name, got, want)
				}
			}
			if backends == 0 {
				t.Errorf("no backend Service in overlay %s: the component's target matched nothing", overlay)
			}
		})
	}
}
