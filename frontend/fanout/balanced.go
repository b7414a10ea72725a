package fanout

import (
	"context"
	"slices"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	knowingnodev1 "github.com/knowingnode/knowingnode/gen/knowingnode/v1"
	"github.com/knowingnode/knowingnode/internal/grpccode"
)

// group keys BALANCED results: the address a call reached, the pod that
// answered there (behind a Service VIP, one address stands for many pods,
// and a reconnection moves to another), and the code.
type group struct{ addr, pod, code string }

// balanced sends count calls through the round-robin channel, at most width
// at a time, and reports one result per group, whose Calls says how many
// calls it stands for, and a sample of every call sent. Calls whose turn
// comes after the deadline are one NOT_SENT result.
func (s *Service) balanced(ctx context.Context, p *Pool, backends []*backend, count, width int) ([]*knowingnodev1.BackendResult, []sample) {
	names := make(map[string]string, len(backends))
	for _, b := range backends {
		names[b.ep.Addr] = b.ep.DNSName
	}
	var (
		mu      sync.Mutex
		groups  = map[group]*knowingnodev1.BackendResult{}
		order   []group
		samples = make([]sample, 0, count)
		wg      sync.WaitGroup
	)
	sem := make(chan struct{}, width)
	lb := p.Balanced()
	timers := s.callTimers(ctx)
	defer timers.stop() // at return, after wg.Wait
	for range count {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ended(ctx) != nil {
			break
		}
		cctx := timers.next()
		s.goCall(&wg, func() {
			defer func() { <-sem }()
			var pr peer.Peer
			start := time.Now()
			resp, err := lb.GetIdentity(cctx, s.req, grpc.Peer(&pr))
			lat := time.Since(start)
			k := group{code: codeOK}
			if pr.Addr != nil {
				k.addr = pr.Addr.String()
			}
			msg := ""
			if err != nil {
				st := status.Convert(err)
				k.code, msg = grpccode.Name(st.Code()), st.Message()
				if isDraining(st) {
					// Every pod is draining: round robin had none to pick.
					k.code, msg = CodeDraining, drainingMessage
				}
			} else {
				k.pod = resp.GetIdentity().GetPodName()
			}
			mu.Lock()
			defer mu.Unlock()
			if k.code != CodeDraining {
				samples = append(samples, sample{lat: lat, code: codeIndex(k.code)})
			}
			g, ok := groups[k]
			if !ok {
				g = &knowingnodev1.BackendResult{Address: k.addr, DnsName: names[k.addr], Code: k.code, Message: msg, Latency: durationpb.New(lat)}
				if err == nil {
					g.Identity = resp.GetIdentity()
				}
				groups[k] = g
				order = append(order, k)
			}
			g.Calls++
		})
	}
	wg.Wait()
	if n := sumCalls(groups); n < count {
		// The deadline stopped the loop: the calls never sent, apart.
		k := group{code: CodeNotSent}
		groups[k] = &knowingnodev1.BackendResult{Code: CodeNotSent, Message: notSentMessage(ended(ctx)), Calls: int32(count - n)}
		order = append(order, k)
	}
	out := make([]*knowingnodev1.BackendResult, 0, len(order))
	for _, k := range order {
		out = append(out, groups[k])
	}
	slices.SortStableFunc(out, func(a, b *knowingnodev1.BackendResult) int { return strings.Compare(a.Address, b.Address) })
	return out, samples
}

func sumCalls[K comparable](m map[K]*knowingnodev1.BackendResult) int {
	n := 0
	for _, g := range m {
		n += int(g.Calls)
	}
	return n
}
