package main

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/knowingnode/knowingnode/harness/proc"
)

// Over REST, against the binaries: BALANCED takes a policy and ring_hash's
// keys from the query, names the policy in the reply, and gives each pod's
// load as the backends reported it (ORCA, on by default); an unknown
// policy is 400 naming the policies.
func TestRESTBalancedPolicy(t *testing.T) {
	dir := proc.Build(t, "../backend", ".")
	var addrs []string
	for i := range 3 {
		b := startProcess(t, dir, "backend", []string{fmt.Sprintf("POD_NAME=backend-%d", i)},
			"--grpc-addr", "127.0.0.1:0", "--admin-addr", "", "--downward-dir", "", "--orca-utilization", "0.5")
		addrs = append(addrs, b.Addrs["grpc"])
	}
	fe := startProcess(t, dir, "frontend", []string{"POD_NAME=frontend-0"},
		"--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0", "--downward-dir", "",
		"--target", "pods=static:///"+strings.Join(addrs, ","))
	base := "http://" + fe.Addrs["http"] + "/v1/fanout?mode=BALANCED"

	var ring struct {
		Policy  string
		Results []struct {
			HashKeys []string
			Identity *struct{ PodName string }
		}
		Summary struct {
			Ok        int
			LoadByPod map[string]struct {
				Reports                int
				ApplicationUtilization float64
			}
		}
	}
	getJSON(t, base+"&count=40&policy=ring_hash&hashKeys=a&hashKeys=b&hashKeys=c&hashKeys=d", http.StatusOK, &ring)
	keys := map[string]string{}
	for _, r := range ring.Results {
		for _, k := range r.HashKeys {
			if p, ok := keys[k]; ok {
				t.Errorf("key %s reached %s and %s", k, p, r.Identity.PodName)
			}
			keys[k] = r.Identity.PodName
		}
	}
	if ring.Policy != "ring_hash" || ring.Summary.Ok != 40 || len(keys) != 4 {
		t.Errorf("ring_hash over REST: policy %q, %d ok, keys %v; want ring_hash, 40, each of a-d on one pod", ring.Policy, ring.Summary.Ok, keys)
	}
	for pod, l := range ring.Summary.LoadByPod {
		if l.Reports == 0 || l.ApplicationUtilization != 0.5 {
			t.Errorf("%s's load %+v, want the reports of its calls, utilization 0.5", pod, l)
		}
	}
	if len(ring.Summary.LoadByPod) == 0 {
		t.Error("no load by pod")
	}

	var bad struct {
		Error struct {
			Code    int
			Message string
		}
	}
	getJSON(t, base+"&policy=random", http.StatusBadRequest, &bad)
	if !strings.Contains(bad.Error.Message, "pick_first, round_robin, weighted_round_robin, least_request, ring_hash") {
		t.Errorf("an unknown policy: %+v, want the policies named", bad)
	}
}
