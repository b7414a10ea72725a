package main

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/resolver/manual"

	"github.com/knowingnode/knowingnode/backend/fault"
	"github.com/knowingnode/knowingnode/backend/loadreport"
	knowingnodev1 "github.com/knowingnode/knowingnode/gen/knowingnode/v1"
	"github.com/knowingnode/knowingnode/internal/balancing"
	"github.com/knowingnode/knowingnode/internal/discovery"
	"github.com/knowingnode/knowingnode/internal/identity"
	"github.com/knowingnode/knowingnode/internal/load/calls"
	"github.com/knowingnode/knowingnode/internal/load/engine"
)

// The policy tests run real backends in-process (the backend's identity
// service, ORCA reporter and fault injection, over loopback TCP) and drive
// them through bin/load's own dial and caller. They assert directions and
// ratios with generous slack, so that they pass every time on a loaded
// 2-core machine (run with -count=300).

// pod is a backend in-process: what makes it differ from its peers.
type pod struct {
	load    loadreport.Config
	latency time.Duration
}

// startPods serves each pod on 127.0.0.1 and returns their addresses; pod
// i is named pod-<i>.
func startPods(t *testing.T, pods ...pod) []string {
	t.Helper()
	var addrs []string
	for i, p := range pods {
		if p.load.Interval == 0 {
			p.load.Interval = 50 * time.Millisecond
		}
		rep := loadreport.New(p.load)
		opts := rep.ServerOptions()
		if p.latency > 0 {
			opts = append(opts, grpc.ChainUnaryInterceptor(fault.Interceptor(fault.Config{Latency: p.latency}, nil)))
		}
		srv := grpc.NewServer(opts...)
		knowingnodev1.RegisterIdentityServiceServer(srv, identity.NewServer(&knowingnodev1.Identity{PodName: fmt.Sprintf("pod-%d", i)}))
		healthpb.RegisterHealthServer(srv, health.NewServer())
		if err := rep.Register(srv, t.Context()); err != nil {
			t.Fatal(err)
		}
		lis, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		go srv.Serve(lis)
		t.Cleanup(func() { srv.Stop(); rep.Close() })
		addrs = append(addrs, lis.Addr().String())
	}
	return addrs
}

// policyCaller is bin/load's caller over addrs under policy, reading the
// pods' load reports.
func policyCaller(t *testing.T, policy string, addrs []string) engine.Caller {
	t.Helper()
	p := policyOptions{hashKeys: 100, wrrBlackout: 100 * time.Millisecond, wrrUpdate: 100 * time.Millisecond}
	sc, err := p.serviceConfig(policy)
	if err != nil {
		t.Fatal(err)
	}
	cc, err := dial(staticScheme+strings.Join(addrs, ","), sc, discovery.Builders(discovery.Options{}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return calls.IdentityReported(calls.IdentityOptions{LoadReports: true, HashKeys: p.keys(policy)}, cc)
}

// runCalls makes n calls, workers at a time back to back (closed loop): counted
// calls, not a time, so that a stalled machine changes nothing.
func runCalls(t *testing.T, call engine.Caller, n int64, workers int) *engine.Stats {
	t.Helper()
	sum, err := engine.Run(t.Context(), engine.Config{Concurrency: workers, Count: n, Timeout: 30 * time.Second}, call, nil)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Failed > 0 || sum.OK != n {
		t.Fatalf("%d ok of %d, %d failed %v", sum.OK, n, sum.Failed, sum.ByCode)
	}
	return sum
}

// waitForPods calls until each of n pods has answered: every connection is
// up, so the policy chooses among all of them.
func waitForPods(t *testing.T, call engine.Caller, n int) {
	t.Helper()
	seen := map[string]bool{}
	deadline := time.Now().Add(30 * time.Second)
	for len(seen) < n {
		if time.Now().After(deadline) {
			t.Fatalf("only %v answered within 30s", seen)
		}
		for p := range runCalls(t, call, 10, 2).ByPod {
			seen[p] = true
		}
	}
}

func share(s *engine.Stats, pod string) float64 { return float64(s.ByPod[pod]) / float64(s.OK) }

func podShares(s *engine.Stats) string {
	var b strings.Builder
	for i := range len(s.ByPod) {
		p := fmt.Sprintf("pod-%d", i)
		fmt.Fprintf(&b, "%s %.2f", p, share(s, p))
		if l := s.LoadByPod[p]; l != nil {
			fmt.Fprintf(&b, " (app %.2f qps %.0f weight %.0f)", l.ApplicationUtilization, l.QPS, l.Weight)
		}
		b.WriteString("; ")
	}
	return b.String()
}

// Under round_robin each of 3 equal pods gets about a third.
func TestPolicyRoundRobin(t *testing.T) {
	call := policyCaller(t, balancing.RoundRobin, startPods(t, pod{}, pod{}, pod{load: loadreport.Config{Utilization: 0.9}}))
	waitForPods(t, call, 3)
	sum := runCalls(t, call, 300, 3)
	t.Logf("round_robin: %s", podShares(sum))
	for i := range 3 {
		if s := share(sum, fmt.Sprintf("pod-%d", i)); s < 0.25 || s > 0.42 {
			t.Errorf("round_robin: pod-%d took %.2f, want about 1/3: %s", i, s, podShares(sum))
		}
	}
	// The per-call reports reached the result: the claim is seen.
	if l := sum.LoadByPod["pod-2"]; l == nil || l.ApplicationUtilization < 0.89 || l.Reports == 0 {
		t.Errorf("pod-2's load %+v, want its claimed application utilization 0.9 at least", l)
	}
}

// Under weighted_round_robin a pod whose utilization says it is loaded
// gets clearly less; under round_robin it would get a third.
func TestPolicyWeightedRoundRobin(t *testing.T) {
	for _, tc := range []struct {
		name   string
		loaded loadreport.Config
		want   float64 // the loaded pod's share at most
		ratio  bool    // and at most half of each peer's
	}{
		// Capacity 4x smaller: weight = rate/(rate/capacity) = capacity, so
		// it should get 1/9 (0.11), steadily.
		{"capacity", loadreport.Config{Capacity: 100}, 0.2, true},
		// A fixed claim 4x higher: weight = rate/claim, and less rate means
		// less weight, so its share shrinks at every weight update towards
		// nothing. So do the shares of equal peers drift apart (one may
		// take most), which is why no ratio to a peer is asserted.
		{"claim", loadreport.Config{Utilization: 0.8}, 0.2, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			peer := loadreport.Config{Capacity: 400}
			if tc.loaded.Utilization > 0 {
				peer = loadreport.Config{Utilization: 0.2}
			}
			call := policyCaller(t, balancing.WeightedRoundRobin, startPods(t, pod{load: peer}, pod{load: peer}, pod{load: tc.loaded}))
			waitForPods(t, call, 3)
			// Weights take reports (a sample of the rate every 50ms), the
			// blackout (100ms) and an update (every 100ms): rounds of calls
			// until one shows them, for up to 60s (a machine at a load
			// average of 30 took 15s). Under round_robin no round ever
			// would: each gets a third.
			deadline := time.Now().Add(60 * time.Second)
			for round := 1; ; round++ {
				sum := runCalls(t, call, 150, 3)
				loaded := share(sum, "pod-2")
				if loaded <= tc.want && (!tc.ratio || loaded <= share(sum, "pod-0")/2 && loaded <= share(sum, "pod-1")/2) {
					t.Logf("weighted_round_robin, round %d: %s", round, podShares(sum))
					return
				}
				if time.Now().After(deadline) {
					t.Fatalf("weighted_round_robin: after %d rounds the loaded pod took %.2f, want at most %.2f (and half of each peer's: %v): %s",
						round, loaded, tc.want, tc.ratio, podShares(sum))
				}
			}
		})
	}
}

// least_request moves calls away from a slow pod: it has calls in flight
// longer, so it is the busier of the two pods sampled. grpc-go samples 2
// pods with replacement, so 1/9 of the picks see the slow pod alone: its
// share never falls below about 0.11. A 60ms pod got 0.12-0.15, but 0.22
// once when a starved machine (load average 30) slowed every call; 250ms
// keeps it near the floor.
func TestPolicyLeastRequest(t *testing.T) {
	call := policyCaller(t, balancing.LeastRequest, startPods(t, pod{}, pod{}, pod{latency: 250 * time.Millisecond}))
	waitForPods(t, call, 3)
	sum := runCalls(t, call, 300, 8)
	t.Logf("least_request: %s", podShares(sum))
	if slow := share(sum, "pod-2"); slow > 0.25 || slow > share(sum, "pod-0")/1.5 || slow > share(sum, "pod-1")/1.5 {
		t.Errorf("least_request: the slow pod took %.2f, want at most 0.25 and 2/3 of each peer's: %s", slow, podShares(sum))
	}
}

// ring_hash keeps each key on one pod, and a scale-up from 3 to 4 pods
// moves few keys. grpc-go's ring has about the same size whatever the pods,
// so each old pod also loses a quarter of its points on the ring and keys
// move between old pods too: about 0.39 of the keys move rather than the
// 1/(N+1) = 0.25 of an ideal consistent hash. The bound is 2/(N+1).
func TestPolicyRingHash(t *testing.T) {
	const keys = 400
	addrs := startPods(t, pod{}, pod{}, pod{}, pod{})
	r := manual.NewBuilderWithScheme("ringtest")
	r.InitialState(resolver.State{Addresses: []resolver.Address{{Addr: addrs[0]}, {Addr: addrs[1]}, {Addr: addrs[2]}}})
	p := policyOptions{}
	sc, err := p.serviceConfig(balancing.RingHash)
	if err != nil {
		t.Fatal(err)
	}
	cc, err := grpc.NewClient("ringtest:///pods", grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultServiceConfig(sc), grpc.WithResolvers(r))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	client := knowingnodev1.NewIdentityServiceClient(cc)
	podOf := func(key string) (string, error) {
		ctx, cancel := context.WithTimeout(metadata.AppendToOutgoingContext(t.Context(), balancing.HashHeader, key), 30*time.Second)
		defer cancel()
		resp, err := client.GetIdentity(ctx, &knowingnodev1.GetIdentityRequest{})
		if err != nil {
			return "", fmt.Errorf("key %s: %w", key, err)
		}
		return resp.GetIdentity().GetPodName(), nil
	}
	// mapKeys calls once per key, 8 at a time, and returns each key's pod.
	mapKeys := func() map[string]string {
		out := make(map[string]string, keys)
		var mu sync.Mutex
		var g errgroup.Group
		g.SetLimit(8)
		for k := range keys {
			key := calls.HashKey(k)
			g.Go(func() error {
				p, err := podOf(key)
				if err != nil {
					return err
				}
				mu.Lock()
				defer mu.Unlock()
				out[key] = p
				return nil
			})
		}
		if err := g.Wait(); err != nil {
			t.Fatal(err)
		}
		return out
	}
	// sticky fails unless each key went to the same pod both times.
	sticky := func(when string, a, b map[string]string) {
		for key, p := range a {
			if b[key] != p {
				t.Fatalf("ring_hash %s: key %s went to %s, then to %s", when, key, p, b[key])
			}
		}
	}
	// Each key's calls all go to one pod, the three pods sharing the keys.
	before := mapKeys()
	sticky("on 3 pods", before, mapKeys())
	perPod := map[string]int{}
	for _, p := range before {
		perPod[p]++
	}
	for i := range 3 {
		if n := perPod[fmt.Sprintf("pod-%d", i)]; n < keys/3/2 {
			t.Errorf("ring_hash: pod-%d holds %d of %d keys, want about a third: %v", i, n, keys, perPod)
		}
	}
	// Scale up: a fourth pod. Once it answers, the new ring is in use.
	r.UpdateState(resolver.State{Addresses: []resolver.Address{{Addr: addrs[0]}, {Addr: addrs[1]}, {Addr: addrs[2]}, {Addr: addrs[3]}}})
	deadline := time.Now().Add(30 * time.Second)
	for k := 0; ; k = (k + 1) % keys {
		if p, err := podOf(calls.HashKey(k)); err != nil {
			t.Fatal(err)
		} else if p == "pod-3" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("ring_hash: no key reached the added pod within 30s")
		}
	}
	after := mapKeys()
	sticky("on 4 pods", after, mapKeys())
	moved, toNew := 0, 0
	for key, p := range after {
		if p != before[key] {
			moved++
			if p == "pod-3" {
				toNew++
			}
		}
	}
	t.Logf("ring_hash 3->4: %d of %d keys moved, %d of them to the new pod", moved, keys, toNew)
	if f := float64(moved) / keys; f > 2.0/4 {
		t.Errorf("ring_hash: %.2f of the keys moved on 3->4 pods, want at most 2/(N+1) = 0.5", f)
	}
	if f := float64(toNew) / keys; f < 0.25/2 {
		t.Errorf("ring_hash: the new pod took %.2f of the keys, want about 1/(N+1) = 0.25", f)
	}
}
