package fanout

import (
	"context"
	"errors"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	otelcodes "go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	knowingnodev1 "github.com/knowingnode/knowingnode/gen/knowingnode/v1"
	"github.com/knowingnode/knowingnode/internal/discovery"
	"github.com/knowingnode/knowingnode/internal/grpccode"
)

// CodeDraining is the code of a result whose backend announced, through
// gRPC health checking, that it is shutting down (NOT_SERVING): the channel
// did not call it, and that is no failure.
const CodeDraining = "DRAINING"

// CodeNotSent is the code of a call never sent: the fan-out's deadline
// passed (or its caller left) before its turn came. It is no latency sample
// and no failure of a backend.
const CodeNotSent = "NOT_SENT"

const drainingMessage = "backend is draining (its health is NOT_SERVING): not called"

// notSentMessage says why a call was never sent; err is the fan-out's
// context error.
func notSentMessage(err error) string {
	if errors.Is(err, context.DeadlineExceeded) {
		return "not sent: the fan-out's deadline passed before this call's turn"
	}
	return "not sent: the fan-out ended (its caller left, or the frontend is stopping) before this call's turn"
}

// isDraining tells a call refused because the backend's health is
// NOT_SERVING, as grpc-go's client-side health checking words it
// (google.golang.org/grpc/health/client.go), from any other UNAVAILABLE.
func isDraining(st *status.Status) bool {
	return st.Code() == codes.Unavailable && strings.Contains(st.Message(), "health check failed. status=NOT_SERVING")
}

var codeOK = grpccode.Name(codes.OK)

// each calls every backend once, at most width at a time; the backends
// whose turn comes after the fan-out's deadline are NOT_SENT. A backend
// found draining gets one more try on a new connection (Pool.Renew): behind
// a Service VIP the new connection reaches another, ready pod, as a client
// letting go of a draining pod would; a pod's own address stays draining.
func (s *Service) each(ctx context.Context, pool *Pool, backends []*backend, width int, onResult func(*knowingnodev1.BackendResult)) []*knowingnodev1.BackendResult {
	n := len(backends)
	results := make([]*knowingnodev1.BackendResult, n)
	// One allocation for all the results and one for their latencies,
	// rather than two per call.
	slab := make([]knowingnodev1.BackendResult, n)
	lats := make([]durationpb.Duration, n)
	// The calls' trailers, for their load reports, and the options that
	// ask for them: two allocations, not two per call.
	trailers := make([]metadata.MD, n)
	opts := make([]grpc.CallOption, n)
	sem := make(chan struct{}, width)
	var wg sync.WaitGroup
	timers := s.callTimers(ctx)
	defer timers.stop() // at return, after wg.Wait
	for i, b := range backends {
		results[i] = &slab[i]
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		// When a slot frees as the deadline passes, select picks either at
		// random: the deadline decides, so that no call starts after it.
		if err := ended(ctx); err != nil {
			for j := i; j < n; j++ {
				results[j] = &slab[j]
				setNotSent(results[j], backends[j].ep, err)
				if onResult != nil {
					onResult(results[j])
				}
			}
			break
		}
		cctx := timers.next()
		opts[i] = grpc.Trailer(&trailers[i])
		do := func() {
			defer func() { <-sem }()
			r := results[i]
			s.call(cctx, b.client, b.ep, r, &lats[i], opts[i:i+1])
			if len(trailers[i]) > 0 && b.lb != nil {
				b.lb.observe(trailers[i], time.Now())
			}
			// Behind a VIP a new connection may reach another draining pod
			// in a rollout: a few tries, each a new connection, none after
			// the deadline.
			cc := b.cc
			for try := 0; try < 3 && r.Code == CodeDraining && ended(cctx) == nil; try++ {
				c, renewed, ok := pool.Renew(b.ep.Addr, cc, try > 0)
				if !ok {
					break
				}
				cc = renewed
				s.call(cctx, c, b.ep, r, &lats[i], nil)
			}
			if onResult != nil {
				onResult(r)
			}
		}
		if i == n-1 {
			// The last call on this goroutine, which would only wait for
			// it: a fan-out over one backend hands nothing over.
			do()
		} else {
			s.goCall(&wg, do)
		}
	}
	wg.Wait()
	return results
}

// ended returns why ctx is over, or nil: its error, or DeadlineExceeded as
// soon as the clock passed its deadline. Its timer may fire a little later
// (more so on a busy machine), and a call started in between would fail at
// once: a call that was never really made.
func ended(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if dl, ok := ctx.Deadline(); ok && !time.Now().Before(dl) {
		return context.DeadlineExceeded
	}
	return nil
}

// timerSlack is how far apart two backend calls of a fan-out may start and
// still share one deadline (callTimers).
const timerSlack = 5 * time.Millisecond

// callTimers bound a fan-out's backend calls by BackendTimeout. Calls that
// start within timerSlack of the first one to use a deadline share it: a
// context and timer per call were most of the allocations of a call's own
// path. So a call may get up to timerSlack less than BackendTimeout. When
// the fan-out's deadline comes first, the calls take it, and no timer of
// their own. Not safe for concurrent use: the loop that starts the calls
// uses it.
type callTimers struct {
	parent  context.Context
	timeout time.Duration
	cur     context.Context
	at      time.Time
	cancels []context.CancelFunc
}

func (s *Service) callTimers(ctx context.Context) *callTimers {
	return &callTimers{parent: ctx, timeout: s.opts.BackendTimeout}
}

// next returns the context of a call starting now.
func (t *callTimers) next() context.Context {
	now := time.Now()
	if dl, ok := t.parent.Deadline(); ok && dl.Sub(now) <= t.timeout {
		return t.parent
	}
	if t.cur != nil && now.Sub(t.at) <= timerSlack {
		return t.cur
	}
	ctx, cancel := context.WithDeadline(t.parent, now.Add(t.timeout))
	t.cur, t.at = ctx, now
	t.cancels = append(t.cancels, cancel)
	return ctx
}

// stop releases the timers once every call has returned.
func (t *callTimers) stop() {
	for _, c := range t.cancels {
		c()
	}
}

// call calls one backend, ctx bounding it (callTimers), and writes the
// outcome into r, its latency into lat (r's, so that a result costs no
// allocation of its own). opts are the call's: each's ask for its trailer,
// whose load report goes to the connection's endpointLB, since a backend
// gives each connection each new sample once, on whichever call comes
// first, and BALANCED's policies need it.
func (s *Service) call(ctx context.Context, c knowingnodev1.IdentityServiceClient, ep discovery.Endpoint, r *knowingnodev1.BackendResult, lat *durationpb.Duration, opts []grpc.CallOption) {
	var span trace.Span
	if s.opts.Tracer != nil {
		ctx, span = s.opts.Tracer.Start(ctx, "fanout.backend", trace.WithAttributes(
			attribute.String("knowingnode.backend.address", ep.Addr),
			attribute.String("knowingnode.backend.dns_name", ep.DNSName)))
		defer span.End()
	}
	start := time.Now()
	resp, err := c.GetIdentity(ctx, s.req, opts...)
	took := time.Since(start)
	lat.Seconds, lat.Nanos = int64(took/time.Second), int32(took%time.Second)
	r.Address, r.DnsName, r.Latency, r.Calls = ep.Addr, ep.DNSName, lat, 1
	r.Identity, r.Message = nil, ""
	if err != nil {
		st := status.Convert(err)
		if isDraining(st) {
			if span != nil {
				span.SetAttributes(attribute.Bool("knowingnode.backend.draining", true))
			}
			r.Code, r.Message = CodeDraining, drainingMessage
			return
		}
		if span != nil {
			span.SetStatus(otelcodes.Error, grpccode.Name(st.Code())+": "+st.Message())
		}
		r.Code, r.Message = grpccode.Name(st.Code()), st.Message()
		return
	}
	if span != nil {
		span.SetAttributes(
			attribute.String("knowingnode.backend.pod", resp.GetIdentity().GetPodName()),
			attribute.String("knowingnode.backend.node", resp.GetIdentity().GetNodeName()))
	}
	r.Code, r.Identity = codeOK, resp.GetIdentity()
}

// setNotSent makes r the result of a call to ep never sent; err is the
// fan-out's context error. It has no latency: it is no sample.
func setNotSent(r *knowingnodev1.BackendResult, ep discovery.Endpoint, err error) {
	r.Address, r.DnsName, r.Code, r.Message, r.Calls = ep.Addr, ep.DNSName, CodeNotSent, notSentMessage(err), 1
}

// eachSamples returns the latency samples of EACH results: every call
// sent, so neither DRAINING nor NOT_SENT.
func eachSamples(results []*knowingnodev1.BackendResult) []sample {
	out := make([]sample, 0, len(results))
	for _, r := range results {
		if r.Code != CodeDraining && r.Code != CodeNotSent {
			out = append(out, sample{lat: r.Latency.AsDuration(), code: codeIndex(r.Code)})
		}
	}
	return out
}
