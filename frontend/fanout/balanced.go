package fanout

import (
	"context"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	knowingnodev1 "github.com/knowingnode/knowingnode/gen/knowingnode/v1"
	"github.com/knowingnode/knowingnode/internal/grpccode"
)

// group keys BALANCED results: the address a call reached, the pod that
// answered there (behind a Service VIP, one address stands for many pods,
// and a reconnection moves to another), and the code.
type group struct{ addr, pod, code string }

// groupResult is a BALANCED group's result as its calls come in: the
// load its pod reported, and under ring_hash its keys.
type groupResult struct {
	r    *knowingnodev1.BackendResult
	load knowingnodev1.BackendLoad
	keys map[string]bool // ring_hash: r.HashKeys, as a set
	// known: load holds a report, from these calls' trailers or the last
	// one read on the connection before them.
	known bool
}

// balanced sends count calls, each to the endpoint lb's policy picks, at
// most width at a time, and reports one result per group, whose Calls says
// how many calls it stands for, with the load its pod reported in its
// calls' trailers (ORCA); and a sample of every call sent. Calls whose turn
// comes after the deadline are one NOT_SENT result.
func (s *Service) balanced(ctx context.Context, lb *balancer, count, width int) ([]*knowingnodev1.BackendResult, []sample) {
	var (
		mu      sync.Mutex
		groups  = map[group]*groupResult{}
		order   []group
		samples = make([]sample, 0, count)
		wg      sync.WaitGroup
		// Each call's trailer, and the option that reads it: one slab
		// each per fan-out rather than one allocation per call.
		trailers = make([]metadata.MD, count)
		opts     = make([]grpc.CallOption, count)
	)
	sem := make(chan struct{}, width)
	timers := s.callTimers(ctx)
	defer timers.stop() // at return, after wg.Wait
	for i := range count {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ended(ctx) != nil {
			break
		}
		cctx := timers.next()
		opts[i] = grpc.Trailer(&trailers[i])
		s.goCall(&wg, func() {
			defer func() { <-sem }()
			key, hasKey := lb.key(i)
			start := time.Now()
			pk, resp, err := lb.call(cctx, s.req, uint64(i), key, hasKey, start, &trailers[i], opts[i:i+1])
			end := time.Now()
			lat := end.Sub(start)
			k := group{addr: pk.b.ep.Addr, code: codeOK}
			msg := ""
			if err != nil {
				st := status.Convert(err)
				k.code, msg = grpccode.Name(st.Code()), st.Message()
				if isDraining(st) {
					// Every pod is draining: the policy had none to pick.
					k.code, msg = CodeDraining, drainingMessage
				}
			} else {
				k.pod = resp.GetIdentity().GetPodName()
			}
			report, reported := pk.b.lb.observe(trailers[i], end)
			mu.Lock()
			defer mu.Unlock()
			if k.code != CodeDraining {
				samples = append(samples, sample{lat: lat, code: codeIndex(k.code)})
			}
			g, ok := groups[k]
			if !ok {
				g = &groupResult{r: &knowingnodev1.BackendResult{Address: k.addr, DnsName: pk.b.ep.DNSName, Code: k.code, Message: msg, Latency: durationpb.New(lat)}}
				if err == nil {
					g.r.Identity = resp.GetIdentity()
				}
				groups[k] = g
				order = append(order, k)
			}
			g.r.Calls++
			if reported {
				g.load.Reports++
			} else {
				// A backend gives a connection each new sample once: the
				// calls in between show the last one the frontend read.
				report, reported = pk.b.lb.last()
			}
			if reported {
				l := &g.load
				g.known = true
				l.CpuUtilization, l.ApplicationUtilization, l.Rps, l.Eps = report.CPUUtilization, report.ApplicationUtilization, report.QPS, report.EPS
			}
			if lb.policy == policyWeightedRoundRobin {
				g.load.Weight, g.load.WeightShare = pk.weight, pk.share
			}
			if hasKey && lb.policy == policyRingHash && !g.keys[key] {
				if g.keys == nil {
					g.keys = map[string]bool{}
				}
				g.keys[key] = true
				g.r.HashKeys = append(g.r.HashKeys, key)
			}
		})
	}
	wg.Wait()
	out := make([]*knowingnodev1.BackendResult, 0, len(order)+1)
	n := 0
	for _, k := range order {
		g := groups[k]
		if g.known {
			g.r.Load = &g.load
		}
		n += int(g.r.Calls)
		out = append(out, g.r)
	}
	if n < count {
		// The deadline stopped the loop: the calls never sent, apart.
		out = append(out, &knowingnodev1.BackendResult{Code: CodeNotSent, Message: notSentMessage(ended(ctx)), Calls: int32(count - n)})
	}
	slices.SortStableFunc(out, func(a, b *knowingnodev1.BackendResult) int { return strings.Compare(a.Address, b.Address) })
	return out, samples
}

// key returns the hash key of call i under ring_hash, if any.
func (lb *balancer) key(i int) (string, bool) {
	if lb.policy != policyRingHash || len(lb.keys) == 0 {
		return "", false
	}
	return lb.keys[i%len(lb.keys)], true
}

// call makes BALANCED call n: picks its endpoint, calls it, and tries a
// call that met UNAVAILABLE again on another endpoint, up to
// balancedAttempts in all, as a retry policy would. trailer (which opts
// fills) holds the last attempt's trailer; the pick is that attempt's.
func (lb *balancer) call(ctx context.Context, req *knowingnodev1.GetIdentityRequest, n uint64, key string, hasKey bool, now time.Time,
	trailer *metadata.MD, opts []grpc.CallOption) (pick, *knowingnodev1.GetIdentityResponse, error) {
	var h uint64
	if lb.policy == policyRingHash {
		if hasKey {
			h = hashOf(key)
		} else {
			h = rand.Uint64() // grpc-go's hash of a call without a key
		}
	}
	// Round robin's counter is the pool's, shared with its other users.
	if lb.policy == policyRoundRobin {
		n = lb.p.lb.next.Add(1)
	}
	var t tries
	var (
		pk   pick
		resp *knowingnodev1.GetIdentityResponse
		err  error
	)
	for try := range balancedAttempts {
		bs := lb.p.Backends()
		if len(bs) == 0 {
			if pk.b == nil {
				// Discovery emptied the pool since the fan-out began.
				return pick{b: &backend{lb: &endpointLB{}}}, nil, status.Errorf(codes.Unavailable, "target %s: no endpoints discovered", lb.p.name)
			}
			return pk, resp, err
		}
		pk = lb.pick(bs, n+uint64(try), h, !hasKey, now, &t)
		t[try] = pk.b
		*trailer = nil
		pk.b.lb.inflight.Add(1)
		resp, err = pk.b.client.GetIdentity(ctx, req, opts...)
		pk.b.lb.inflight.Add(-1)
		if status.Code(err) != codes.Unavailable || ctx.Err() != nil {
			break
		}
	}
	return pk, resp, err
}
