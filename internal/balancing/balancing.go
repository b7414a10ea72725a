// Package balancing names the client-side balancing policies knowingnode's
// clients can use, builds their gRPC service config, and reads the ORCA
// load report a backend returns with each call.
//
// The policies are grpc-go's own (v1.85): pick_first, round_robin,
// weighted_round_robin (weights from the backends' ORCA reports),
// least_request (grpc-go's least_request_experimental) and ring_hash
// (ring_hash_experimental, hashing the HashHeader of each call).
package balancing

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	// The policies beyond pick_first and round_robin register themselves.
	_ "google.golang.org/grpc/balancer/leastrequest"
	_ "google.golang.org/grpc/balancer/ringhash"
	_ "google.golang.org/grpc/balancer/weightedroundrobin"
	_ "google.golang.org/grpc/health" // client-side health checking
)

// The policies, by the names the flags take.
const (
	PickFirst          = "pick_first"
	RoundRobin         = "round_robin"
	WeightedRoundRobin = "weighted_round_robin"
	LeastRequest       = "least_request"
	RingHash           = "ring_hash"
)

// Policies lists them in the order the README explains them.
var Policies = []string{PickFirst, RoundRobin, WeightedRoundRobin, LeastRequest, RingHash}

// HashHeader is the request header ring_hash hashes: calls with the same
// value go to the same pod while the set of pods stays the same.
const HashHeader = "knowingnode-hash-key"

// grpcName is the policy's registered name in grpc-go.
var grpcName = map[string]string{
	PickFirst:          "pick_first",
	RoundRobin:         "round_robin",
	WeightedRoundRobin: "weighted_round_robin",
	LeastRequest:       "least_request_experimental",
	RingHash:           "ring_hash_experimental",
}

// Check returns an error naming the policies when p is not one of them.
func Check(p string) error {
	if !slices.Contains(Policies, p) {
		return fmt.Errorf("%q is not one of %s", p, strings.Join(Policies, ", "))
	}
	return nil
}

// Options tune a policy; the zero value takes grpc-go's defaults.
type Options struct {
	// WeightedRoundRobin: how long a pod must report before its weight is
	// used (grpc-go: 10 s) and how often weights are recomputed (1 s; at
	// least 100 ms).
	BlackoutPeriod     time.Duration
	WeightUpdatePeriod time.Duration
	// HealthCheck watches each pod's gRPC health, so a draining pod
	// (NOT_SERVING) gets no new calls; pick_first never checks.
	HealthCheck bool
}

// ServiceConfig is the gRPC service config (JSON) selecting policy p.
func ServiceConfig(p string, o Options) (string, error) {
	if err := Check(p); err != nil {
		return "", err
	}
	cfg := map[string]any{}
	switch p {
	case WeightedRoundRobin:
		if o.BlackoutPeriod > 0 {
			cfg["blackoutPeriod"] = duration(o.BlackoutPeriod)
		}
		if o.WeightUpdatePeriod > 0 {
			cfg["weightUpdatePeriod"] = duration(o.WeightUpdatePeriod)
		}
	case RingHash:
		cfg["requestHashHeader"] = HashHeader
	}
	sc := map[string]any{"loadBalancingConfig": []any{map[string]any{grpcName[p]: cfg}}}
	if o.HealthCheck && p != PickFirst {
		sc["healthCheckConfig"] = map[string]any{"serviceName": ""}
	}
	b, err := json.Marshal(sc)
	return string(b), err
}

// duration is the JSON form of a protobuf Duration, e.g. "0.250s".
func duration(d time.Duration) string { return fmt.Sprintf("%.3fs", d.Seconds()) }
