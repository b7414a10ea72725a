// Package matrix serves MatrixService: every frontend pod (the peers, found
// through a headless Service of the frontend tier) fans out to every backend
// pod of a configured target, k rounds each, and the answers are merged into
// a frontend x backend matrix, per path (target), collapsed by node and zone.
package matrix

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/semaphore"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	knowingnodev1 "github.com/knowingnode/knowingnode/gen/knowingnode/v1"
	"github.com/knowingnode/knowingnode/internal/grpccode"
)

// Limits of a request.
const (
	DefaultCalls   = 3
	MaxCalls       = 100 // k, calls per backend per frontend
	MaxTargets     = 2   // one path, or two to compare
	DefaultTimeout = 30 * time.Second
	MaxTimeout     = time.Minute
)

// Names of the admission limits, in errors and metrics: the flags that set them.
const (
	LimitMatrixCalls = "max-matrix-calls"
	LimitMatrices    = "max-matrices"
)

// FanOuter is what the matrix needs of the local fan-out service: the
// fan-out's public API (fanout.Service), called in-process for this
// frontend's own row.
type FanOuter interface {
	FanOut(context.Context, *knowingnodev1.FanOutRequest) (*knowingnodev1.FanOutResponse, error)
	ListTargets(context.Context, *knowingnodev1.ListTargetsRequest) (*knowingnodev1.ListTargetsResponse, error)
}

// Options tune a Service.
type Options struct {
	// Self is this frontend: its row is made in-process, and a peer whose
	// address is one of its pod IPs is taken for it.
	Self  *knowingnodev1.Identity
	Local FanOuter
	// Peers are the other frontends (and usually this one); nil: alone, a
	// one-row matrix.
	Peers *Peers
	// Admission: backend calls one matrix may cost (rows x columns x calls),
	// and matrices running at once; 0 means no limit. Past either a matrix
	// is refused with RESOURCE_EXHAUSTED. Each row's fan-outs are admitted
	// by that frontend's fan-out limits as well (max-fanouts,
	// max-backend-calls): this frontend's row refused there refuses the
	// matrix; a peer's refusal is reported in its row.
	MaxMatrixCalls int
	MaxMatrices    int
	// Parallel bounds the peers asked at once; 0 means 16.
	Parallel int
	// NoStreaming turns MatrixStream off (UNIMPLEMENTED).
	NoStreaming bool
	// Disagreements answers ListDisagreements; nil: an empty list.
	Disagreements *Tracker
	Metrics       *Metrics // nil: none
	Logger        *slog.Logger
}

// Service serves MatrixService.
type Service struct {
	knowingnodev1.UnimplementedMatrixServiceServer
	opts     Options
	log      *slog.Logger
	matrices *semaphore.Weighted // nil: no limit
}

// New returns a Service.
func New(o Options) *Service {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Parallel <= 0 {
		o.Parallel = 16
	}
	s := &Service{opts: o, log: o.Logger}
	if o.MaxMatrices > 0 {
		s.matrices = semaphore.NewWeighted(int64(o.MaxMatrices))
	}
	return s
}

// Matrix builds the whole matrix and answers it at once.
func (s *Service) Matrix(ctx context.Context, req *knowingnodev1.MatrixRequest) (*knowingnodev1.MatrixResponse, error) {
	return s.run(ctx, req, nil)
}

// member is one row's frontend: a peer over gRPC, or this one in-process.
type member struct {
	addr  string
	local bool
	fan   func(context.Context, *knowingnodev1.FanOutRequest) (*knowingnodev1.FanOutResponse, error)
}

func (s *Service) members() []member {
	var out []member
	self := false
	for _, p := range s.opts.Peers.list() {
		if s.isSelf(p.addr) && !self {
			self = true
			out = append(out, member{addr: p.addr, local: true, fan: s.opts.Local.FanOut})
			continue
		}
		c := p.client
		out = append(out, member{addr: p.addr, fan: func(ctx context.Context, r *knowingnodev1.FanOutRequest) (*knowingnodev1.FanOutResponse, error) {
			return c.FanOut(ctx, r, grpc.WaitForReady(false))
		}})
	}
	if !self {
		// Alone, or not (yet) listed by the peers' Service: this frontend's
		// row all the same.
		out = append(out, member{addr: "self", local: true, fan: s.opts.Local.FanOut})
	}
	return out
}

// isSelf tells whether a peer address is this frontend: one of its pod IPs
// (or its advertised gRPC host) at its gRPC port, when it knows that port.
func (s *Service) isSelf(addr string) bool {
	h, port, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	self := s.opts.Self
	ipMatch := h == self.GetPodIp() || slices.Contains(self.GetPodIps(), h)
	knowPort := false
	for _, a := range self.GetServingAddresses() {
		hp, ok := strings.CutPrefix(a, "grpc=")
		if !ok {
			continue
		}
		sh, sp, err := net.SplitHostPort(hp)
		if err != nil {
			continue
		}
		knowPort = true
		if sp == port && (ipMatch || sh == h) {
			return true
		}
	}
	return ipMatch && !knowPort
}

type request struct {
	targets []string
	calls   int
	timeout time.Duration
}

func (s *Service) check(ctx context.Context, targets []string, calls int32, timeout *durationpb.Duration) (request, *knowingnodev1.ListTargetsResponse, error) {
	r := request{calls: int(calls), timeout: DefaultTimeout}
	lt, err := s.opts.Local.ListTargets(ctx, &knowingnodev1.ListTargetsRequest{})
	if err != nil {
		return r, nil, fmt.Errorf("matrix: list targets: %w", err)
	}
	if len(targets) > MaxTargets {
		return r, nil, status.Errorf(codes.InvalidArgument, "targets: %d given; at most %d (one path, or two to compare)", len(targets), MaxTargets)
	}
	known := map[string]bool{}
	var names []string
	for _, t := range lt.GetTargets() {
		known[t.GetName()] = true
		names = append(names, t.GetName())
	}
	for _, t := range targets {
		if !known[t] {
			return r, nil, status.Errorf(codes.NotFound, "unknown target %q; configured targets: %s", t, strings.Join(names, ", "))
		}
		if slices.Contains(r.targets, t) {
			return r, nil, status.Errorf(codes.InvalidArgument, "targets: %q given twice", t)
		}
		r.targets = append(r.targets, t)
	}
	if len(r.targets) == 0 {
		r.targets = []string{lt.GetDefaultTarget()}
	}
	if r.calls == 0 {
		r.calls = DefaultCalls
	}
	if r.calls < 1 || r.calls > MaxCalls {
		return r, nil, status.Errorf(codes.InvalidArgument, "calls %d is out of range: want 1..%d (0: %d)", calls, MaxCalls, DefaultCalls)
	}
	if timeout != nil {
		if err := timeout.CheckValid(); err != nil {
			return r, nil, status.Errorf(codes.InvalidArgument, "timeout: %v", err)
		}
		r.timeout = timeout.AsDuration()
		if r.timeout <= 0 || r.timeout > MaxTimeout {
			return r, nil, status.Errorf(codes.InvalidArgument, "timeout %v is out of range: want more than 0s and at most %v", r.timeout, MaxTimeout)
		}
	}
	return r, lt, nil
}

// cost is rows x columns x calls summed over the paths, the columns being
// the endpoints this frontend's discovery lists (its peers' lists are
// alike: they watch the same Service).
func cost(rows int, r request, lt *knowingnodev1.ListTargetsResponse) (total int, parts []string) {
	for _, t := range r.targets {
		cols := 0
		for _, ts := range lt.GetTargets() {
			if ts.GetName() != t {
				continue
			}
			for _, ep := range ts.GetEndpoints() {
				if ep.GetSlice() == nil || ep.GetSlice().GetReady() {
					cols++
				}
			}
		}
		total += rows * cols * r.calls
		parts = append(parts, fmt.Sprintf("%s: %d rows x %d columns x %d calls", t, rows, cols, r.calls))
	}
	return total, parts
}

func (s *Service) admit(n int, parts []string) (release func(), err error) {
	if s.opts.MaxMatrixCalls > 0 && n > s.opts.MaxMatrixCalls {
		s.opts.Metrics.refused(LimitMatrixCalls)
		return nil, status.Errorf(codes.ResourceExhausted,
			"matrix too large: it costs %d backend calls (%s) and the limit (%s) is %d; ask for fewer calls or one target",
			n, strings.Join(parts, "; "), LimitMatrixCalls, s.opts.MaxMatrixCalls)
	}
	if s.matrices != nil && !s.matrices.TryAcquire(1) {
		s.opts.Metrics.refused(LimitMatrices)
		return nil, status.Errorf(codes.ResourceExhausted,
			"too many matrices: %d already running, the limit (%s); retry later", s.opts.MaxMatrices, LimitMatrices)
	}
	return func() {
		if s.matrices != nil {
			s.matrices.Release(1)
		}
	}, nil
}

// run builds the matrix, calling onRound (when not nil) with each peer
// round as it is merged, from the peer's goroutine; it must not block.
func (s *Service) run(ctx context.Context, in *knowingnodev1.MatrixRequest, onRound func(*knowingnodev1.MatrixRound)) (*knowingnodev1.MatrixResponse, error) {
	start := time.Now()
	r, lt, err := s.check(ctx, in.GetTargets(), in.GetCalls(), in.GetTimeout())
	if err != nil {
		return nil, err
	}
	members := s.members()
	n, parts := cost(len(members), r, lt)
	release, err := s.admit(n, parts)
	if err != nil {
		return nil, err
	}
	defer release()

	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	m := newMerger(r.targets)
	var (
		wg      sync.WaitGroup
		fatalMu sync.Mutex
		fatal   error
	)
	sem := make(chan struct{}, s.opts.Parallel)
	emit := func(round *knowingnodev1.MatrixRound) {
		if onRound != nil {
			onRound(round)
		}
	}
	for _, mb := range members {
		wg.Go(func() {
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				emit(m.fail(mb.addr, grpccode.Name(codes.DeadlineExceeded)+": matrix deadline passed before this frontend was asked"))
				return
			}
			defer func() { <-sem }()
			for pi, target := range r.targets {
				for round := 1; round <= r.calls; round++ {
					resp, err := mb.fan(ctx, &knowingnodev1.FanOutRequest{Target: target, Mode: knowingnodev1.FanOutMode_FAN_OUT_MODE_EACH})
					if err != nil {
						st := status.Convert(err)
						if mb.local && st.Code() == codes.ResourceExhausted {
							// This frontend's own fan-out limits refuse it: so
							// does the matrix, naming the limit.
							fatalMu.Lock()
							if fatal == nil {
								fatal = status.Errorf(codes.ResourceExhausted, "matrix refused: this frontend's fan-out for %q: %s", target, st.Message())
							}
							fatalMu.Unlock()
							cancel()
							return
						}
						emit(m.fail(mb.addr, fmt.Sprintf("%s: %s (target %s, round %d)", grpccode.Name(st.Code()), st.Message(), target, round)))
						break // the next rounds of this path would fail alike
					}
					emit(m.add(mb.addr, pi, round, resp))
				}
			}
		})
	}
	wg.Wait()
	if fatal != nil {
		s.opts.Metrics.refused(limitLocalFanOut)
		return nil, fatal
	}
	resp := m.snapshot()
	resp.Coordinator = s.opts.Self
	resp.Calls = int32(r.calls)
	resp.Cost = int32(n)
	resp.Duration = durationpb.New(time.Since(start))
	s.opts.Metrics.done(resp)
	s.log.InfoContext(ctx, "matrix", "targets", strings.Join(r.targets, ","), "rows", len(resp.Rows),
		"columns", len(resp.Columns), "calls", r.calls, "cost", n, "duration", resp.Duration.AsDuration())
	return resp, nil
}

// limitLocalFanOut labels matrices refused by this frontend's fan-out limits.
const limitLocalFanOut = "fanout"

// ListDisagreements lists the DNS against EndpointSlices disagreements.
func (s *Service) ListDisagreements(context.Context, *knowingnodev1.ListDisagreementsRequest) (*knowingnodev1.ListDisagreementsResponse, error) {
	if s.opts.Disagreements == nil {
		return &knowingnodev1.ListDisagreementsResponse{}, nil
	}
	return s.opts.Disagreements.List(), nil
}
