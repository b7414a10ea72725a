package main

import (
	"flag"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/knowingnode/knowingnode/internal/balancing"
	"github.com/knowingnode/knowingnode/internal/load/engine"
)

// policyOptions are the flags of the balancing policy beyond its name.
type policyOptions struct {
	hashKeys    int
	wrrBlackout time.Duration
	wrrUpdate   time.Duration
}

const maxHashKeys = 1 << 20

func (p *policyOptions) register(fs *flag.FlagSet, policy *string) {
	usage := "gRPC balancing policy within a connection: " + strings.Join(balancing.Policies, ", ") +
		" (pick_first takes one address, as a ClusterIP pins; the others spread over every resolved address)"
	fs.StringVar(policy, "policy", balancing.PickFirst, usage)
	fs.StringVar(policy, "balancing", balancing.PickFirst, "the older name of --policy")
	fs.IntVar(&p.hashKeys, "hash-keys", 100, "ring_hash: each call carries one of this many keys, drawn uniformly, in the "+balancing.HashHeader+" header the ring hashes")
	fs.DurationVar(&p.wrrBlackout, "wrr-blackout", 0, "weighted_round_robin: how long a pod must report load before its weight counts (0: grpc-go's 10s)")
	fs.DurationVar(&p.wrrUpdate, "wrr-update", 0, "weighted_round_robin: how often weights are recomputed (0: grpc-go's 1s; at least 100ms)")
}

func (p *policyOptions) validate(policy string, bad func(flag, format string, args ...any)) {
	if err := balancing.Check(policy); err != nil {
		bad("policy", "%v", err)
	}
	if p.hashKeys < 1 || p.hashKeys > maxHashKeys {
		bad("hash-keys", "%d is outside 1..%d", p.hashKeys, maxHashKeys)
	}
	if p.wrrBlackout < 0 || p.wrrBlackout > time.Hour {
		bad("wrr-blackout", "%v is outside 0s..1h", p.wrrBlackout)
	}
	if p.wrrUpdate != 0 && (p.wrrUpdate < 100*time.Millisecond || p.wrrUpdate > time.Hour) {
		bad("wrr-update", "%v is outside 100ms..1h (or 0: the default)", p.wrrUpdate)
	}
}

// serviceConfig selects the policy. Every policy but pick_first checks each
// address's gRPC health, so a draining pod (NOT_SERVING) gets no new calls
// while it still accepts them.
func (p *policyOptions) serviceConfig(policy string) (string, error) {
	return balancing.ServiceConfig(policy, balancing.Options{
		BlackoutPeriod: p.wrrBlackout, WeightUpdatePeriod: p.wrrUpdate, HealthCheck: true,
	})
}

// keys is the number of hash keys a call draws from under policy.
func (p *policyOptions) keys(policy string) int {
	if policy == balancing.RingHash {
		return p.hashKeys
	}
	return 0
}

// loadLines describes, per pod, its share of the calls beside the load it
// reported (ORCA) and the weight weighted_round_robin derives from it.
func loadLines(s *engine.Stats, policy string) []string {
	if len(s.LoadByPod) == 0 {
		return nil
	}
	var out []string
	for _, pod := range slices.Sorted(maps.Keys(s.LoadByPod)) {
		l := s.LoadByPod[pod]
		line := fmt.Sprintf("  %s: %.1f%% of calls; reported cpu %.2f", pod, 100*float64(s.ByPod[pod])/float64(max(s.OK, 1)), l.CPUUtilization)
		if l.ApplicationUtilization > 0 {
			line += fmt.Sprintf(" application %.2f", l.ApplicationUtilization)
		}
		line += fmt.Sprintf(" qps %.1f", l.QPS)
		if l.EPS > 0 {
			line += fmt.Sprintf(" eps %.1f", l.EPS)
		}
		if policy == balancing.WeightedRoundRobin {
			line += fmt.Sprintf("; weight %.1f (%.1f%% of the weights)", l.Weight, 100*l.WeightShare)
		}
		out = append(out, line)
	}
	return out
}
