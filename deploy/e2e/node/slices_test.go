package node

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	knowingnodev1 "github.com/knowingnode/knowingnode/gen/knowingnode/v1"
	"github.com/knowingnode/knowingnode/harness/apijson"
	"github.com/knowingnode/knowingnode/harness/poll"
)

// The targets of the EndpointSlice frontend in these scenarios: the
// StatefulSet's headless Service, once through the API server and once
// through DNS, so one ListTargets shows both views at the same moment.
const slicesTargets = "backend-api=kubernetes:///backend-sts.knowingnode:grpc backend-dns=dns:///backend-sts.knowingnode.svc.cluster.local:9090"

// endpointSlices adds deploy/components/endpointslices as a user does (its
// frontend pointed at the StatefulSet's Service) and compares what the
// EndpointSlice watch and DNS discovery see while the StatefulSet scales
// (its endpoints spread over several slices: the cluster's
// --max-endpoints-per-slice is 4) and rolls.
func endpointSlices(t *testing.T) {
	var base string
	scenario(t, "endpointslice scale 3→6→2→3", func(t *testing.T) string {
		base = applySlicesFrontend(t)
		var out []string
		for _, n := range []int{3, 6, 2, 3} {
			s := scaleAndWatch(t, base, n)
			out = append(out, s)
		}
		return strings.Join(out, "; ")
	})
	scenario(t, "endpointslice rollout shows terminating", func(t *testing.T) string {
		if base == "" {
			t.Skip("no EndpointSlice frontend")
		}
		var mu sync.Mutex
		terminating := map[string]time.Duration{} // address: how long it was seen terminating
		firstSeen := map[string]time.Time{}
		var calledTerminating int
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan struct{})
		go func() {
			defer close(done)
			for ctx.Err() == nil {
				var r knowingnodev1.ListTargetsResponse
				if err := apijson.Get(ctx, fresh, base+"/v1/targets", &r); err == nil {
					now := time.Now()
					mu.Lock()
					for _, e := range target(&r, "backend-api").GetEndpoints() {
						if e.GetSlice().GetTerminating() {
							if _, ok := firstSeen[e.Address]; !ok {
								firstSeen[e.Address] = now
							}
							terminating[e.Address] = now.Sub(firstSeen[e.Address])
							if e.GetSlice().GetReady() {
								calledTerminating++ // ready and terminating: fan-out would call it
							}
						}
					}
					mu.Unlock()
				}
				time.Sleep(100 * time.Millisecond)
			}
		}()
		t0 := time.Now()
		if _, err := kubectl("-n", namespace, "rollout", "restart", "statefulset/backend-sts"); err != nil {
			t.Fatal(err)
		}
		if _, err := kubectl("-n", namespace, "rollout", "status", "statefulset/backend-sts", "--timeout=180s"); err != nil {
			t.Fatal(err)
		}
		rolled := time.Since(t0)
		cancel()
		<-done
		if len(terminating) == 0 {
			t.Errorf("no endpoint of the rollout was ever listed as terminating")
		}
		if calledTerminating > 0 {
			t.Errorf("%d times an endpoint was listed ready while terminating", calledTerminating)
		}
		var seen []string
		for _, a := range slices.Sorted(func(y func(string) bool) {
			for a := range terminating {
				if !y(a) {
					return
				}
			}
		}) {
			seen = append(seen, fmt.Sprintf("%s %.1fs", a, terminating[a].Seconds()))
		}
		// The frontends see the new pods again before the next scenario.
		eachMatchesAPI(t, frontendBase(t, "statefulset"), namespace, "component=backend,controlling=statefulset")
		return fmt.Sprintf("rolled in %.0fs; terminating endpoints listed (not called) while they drained: %s", rolled.Seconds(), strings.Join(seen, ", "))
	})
}

// applySlicesFrontend applies the endpointslices component with the
// targets above and returns one of its pods' base URL.
func applySlicesFrontend(t *testing.T) string {
	dir := filepath.Join(work, "kustomize-endpointslices")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	rel, err := filepath.Rel(dir, filepath.Join(repo, "deploy/components/endpointslices"))
	if err != nil {
		t.Fatal(err)
	}
	k := fmt.Sprintf(`apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
components:
  - %s
images:
  - name: knowingnode
    newTag: %s
patches:
  - patch: |-
      apiVersion: apps/v1
      kind: Deployment
      metadata: {name: frontend-endpointslices, namespace: %s}
      spec:
        template:
          spec:
            containers:
              - name: frontend
                env:
                  - {name: TARGETS, value: %q}
%s`, rel, strings.TrimPrefix(imageTag, "knowingnode:"), namespace, slicesTargets, strings.TrimPrefix(hpaHold, "patches:\n"))
	if err := os.WriteFile(filepath.Join(dir, "kustomization.yaml"), []byte(k), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := kubectl("apply", "-k", dir); err != nil {
		t.Fatal(err)
	}
	if _, err := kubectl("-n", namespace, "rollout", "status", "deployment/frontend-endpointslices", "--timeout=180s"); err != nil {
		t.Fatal(err)
	}
	fes, err := readyPods(namespace, "component=frontend,controlling=endpointslices")
	if err != nil || len(fes) == 0 {
		t.Fatalf("frontend-endpointslices pods: %v %v", names(fes), err)
	}
	base := "http://" + fes[0].Status.PodIP + ":8080"
	// It starts with the ready pods in both views.
	r := recordViews(base)
	defer r.stop()
	if err := r.waitViews(t, 60*time.Second); err != nil {
		t.Fatal(err)
	}
	return base
}

func target(r *knowingnodev1.ListTargetsResponse, name string) *knowingnodev1.TargetState {
	for _, t := range r.GetTargets() {
		if t.GetName() == name {
			return t
		}
	}
	return nil
}

// views are the addresses each discovery would call at one moment.
type views struct {
	at       time.Time
	api, dns []string
}

func callable(ts *knowingnodev1.TargetState) []string {
	var as []string
	for _, e := range ts.GetEndpoints() {
		if e.GetSlice() == nil || e.GetSlice().GetReady() {
			as = append(as, e.GetAddress())
		}
	}
	slices.Sort(as)
	return as
}

// viewRecorder asks ListTargets every 100 ms and keeps every answer.
type viewRecorder struct {
	cancel context.CancelFunc
	done   chan struct{}
	mu     sync.Mutex
	rec    []views
}

func recordViews(base string) *viewRecorder {
	ctx, cancel := context.WithCancel(context.Background())
	r := &viewRecorder{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(r.done)
		for ctx.Err() == nil {
			var lt knowingnodev1.ListTargetsResponse
			if err := apijson.Get(ctx, fresh, base+"/v1/targets", &lt); err == nil {
				v := views{at: time.Now(), api: callable(target(&lt, "backend-api")), dns: callable(target(&lt, "backend-dns"))}
				r.mu.Lock()
				r.rec = append(r.rec, v)
				r.mu.Unlock()
			}
			time.Sleep(100 * time.Millisecond)
		}
	}()
	return r
}

func (r *viewRecorder) stop() []views {
	r.cancel()
	<-r.done
	return r.rec
}

// waitViews waits until both views hold exactly the ready pods' addresses.
func (r *viewRecorder) waitViews(t *testing.T, limit time.Duration) error {
	return poll.Until(t.Context(), limit, 100*time.Millisecond, "both views to list the ready pods", func(ctx context.Context) error {
		r.mu.Lock()
		if len(r.rec) == 0 {
			r.mu.Unlock()
			return fmt.Errorf("no ListTargets answer yet")
		}
		v := r.rec[len(r.rec)-1]
		r.mu.Unlock()
		want, err := readyAddrs()
		if err != nil {
			return err
		}
		if !slices.Equal(v.api, want) || !slices.Equal(v.dns, want) {
			return fmt.Errorf("API %v, DNS %v; ready %v", v.api, v.dns, want)
		}
		return nil
	})
}

func readyAddrs() ([]string, error) {
	ps, err := readyPods(namespace, "component=backend,controlling=statefulset")
	if err != nil {
		return nil, err
	}
	var as []string
	for _, p := range ps {
		as = append(as, p.Status.PodIP+":9090")
	}
	slices.Sort(as)
	return as, nil
}

// scaleAndWatch scales the StatefulSet to n and reports how long after the
// API had the change each view took to show it: for a scale-up, from the
// last new pod's Ready; for a scale-down, from the request (the pods stop
// being ready endpoints as they begin terminating).
func scaleAndWatch(t *testing.T, base string, n int) string {
	r := recordViews(base)
	defer r.stop()
	t0 := time.Now()
	if _, err := kubectl("-n", namespace, "scale", "statefulset/backend-sts", fmt.Sprintf("--replicas=%d", n)); err != nil {
		t.Fatal(err)
	}
	var ready []pod
	err := poll.Until(t.Context(), waitLimit, 200*time.Millisecond, fmt.Sprintf("%d pods Ready", n), func(context.Context) error {
		all, err := pods(namespace, "component=backend,controlling=statefulset")
		if err != nil {
			return err
		}
		ready = ready[:0]
		for _, p := range all {
			if p.ready() && p.Metadata.DeletionTimestamp == nil {
				ready = append(ready, p)
			}
		}
		if len(all) != n || len(ready) != n {
			return fmt.Errorf("%d pods, %d ready", len(all), len(ready))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.waitViews(t, 60*time.Second); err != nil {
		t.Fatal(err)
	}
	rec := r.stop()
	ref := t0
	for _, p := range ready {
		if r := p.readySince(); r.After(ref) {
			ref = r
		}
	}
	want := rec[len(rec)-1].api
	seen := func(f func(views) []string) time.Time {
		// The first answer after which the view held exactly the final set.
		at := rec[len(rec)-1].at
		for i := len(rec) - 1; i >= 0 && slices.Equal(f(rec[i]), want); i-- {
			at = rec[i].at
		}
		return at
	}
	api, dns := seen(func(v views) []string { return v.api }), seen(func(v views) []string { return v.dns })
	// Before DNS, allowing for the poll's 100 ms and a DNS refresh that
	// happens to fall right after the change.
	if api.After(dns.Add(time.Second)) {
		t.Errorf("scaled to %d: the EndpointSlice watch showed it %.1fs after DNS", n, api.Sub(dns).Seconds())
	}
	nSlices := 0
	if out, err := kubectl("-n", namespace, "get", "endpointslices", "-l", "kubernetes.io/service-name=backend-sts", "-o", "name"); err == nil {
		nSlices = len(strings.Fields(out))
	}
	if n > 4 && nSlices < 2 {
		t.Errorf("%d endpoints in %d EndpointSlices: want several (--max-endpoints-per-slice 4)", n, nSlices)
	}
	return fmt.Sprintf("%d (%d slices): API +%.1fs, DNS +%.1fs", n, nSlices, max(0, api.Sub(ref).Seconds()), max(0, dns.Sub(ref).Seconds()))
}
