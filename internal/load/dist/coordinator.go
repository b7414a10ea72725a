package dist

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	knowingnodev1 "github.com/knowingnode/knowingnode/gen/knowingnode/v1"
	"github.com/knowingnode/knowingnode/internal/discovery"
	"github.com/knowingnode/knowingnode/internal/load/engine"
)

// Policies.
const (
	// ReadyAbort fails the run when fewer than the workers asked are ready
	// in time; ReadyPartial starts with those that are (at least
	// MinWorkers), sharing the whole rate, and says so in the result.
	ReadyAbort   = "abort"
	ReadyPartial = "partial"
	// LostContinue goes on without a lost worker, marking the run
	// degraded; LostAbort ends the run at the first loss.
	LostContinue = "continue"
	LostAbort    = "abort"
)

// Config is one distributed run.
type Config struct {
	RunID  string // default: random
	Target string // a name every worker was configured with
	// Engine is the run: Rate is the total over all workers, Concurrency
	// per worker; Duration, Warmup, Window and Timeout as in a single run.
	Engine engine.Config
	// Workers is how many workers the run waits for; MinWorkers is the
	// fewest ReadyPartial starts with (default 1).
	Workers, MinWorkers int
	ReadyTimeout        time.Duration // default 30s
	ReadyPolicy         string        // ReadyAbort (default) or ReadyPartial
	LostPolicy          string        // LostContinue (default) or LostAbort
	// StartDelay is how long after the last worker is ready t0 is, so that
	// every start message arrives before it; default 1s.
	StartDelay time.Duration
	// Grace is how long after a window's end its report may arrive before
	// the worker is lost; default one window, so a loss is seen within two.
	Grace time.Duration
}

func (c *Config) defaults() error {
	if c.RunID == "" {
		b := make([]byte, 6)
		_, _ = rand.Read(b)
		c.RunID = "run-" + hex.EncodeToString(b)
	}
	if c.Engine.Window == 0 {
		c.Engine.Window = engine.DefaultWindow
	}
	if c.Engine.Timeout == 0 {
		c.Engine.Timeout = engine.DefaultTimeout
	}
	if c.MinWorkers == 0 {
		c.MinWorkers = 1
	}
	if c.ReadyTimeout == 0 {
		c.ReadyTimeout = 30 * time.Second
	}
	if c.ReadyPolicy == "" {
		c.ReadyPolicy = ReadyAbort
	}
	if c.LostPolicy == "" {
		c.LostPolicy = LostContinue
	}
	if c.StartDelay == 0 {
		c.StartDelay = time.Second
	}
	if c.Grace == 0 {
		c.Grace = c.Engine.Window
	}
	var errs []error
	check := func(ok bool, format string, args ...any) {
		if !ok {
			errs = append(errs, fmt.Errorf(format, args...))
		}
	}
	check(c.Target != "", "a target name is required")
	check(c.Workers >= 1 && c.Workers <= MaxWorkers, "workers %d is outside 1..%d", c.Workers, MaxWorkers)
	check(c.MinWorkers >= 1 && c.MinWorkers <= c.Workers, "min workers %d is outside 1..%d", c.MinWorkers, c.Workers)
	check(c.Engine.Rate > 0, "rate %g: a distributed run is open loop, it needs a rate above 0", c.Engine.Rate)
	check(c.Engine.Duration > 0 && c.Engine.Count == 0, "a distributed run needs a duration (and no count)")
	check(c.ReadyPolicy == ReadyAbort || c.ReadyPolicy == ReadyPartial, "ready policy %q is not %s or %s", c.ReadyPolicy, ReadyAbort, ReadyPartial)
	check(c.LostPolicy == LostContinue || c.LostPolicy == LostAbort, "lost policy %q is not %s or %s", c.LostPolicy, LostContinue, LostAbort)
	check(c.ReadyTimeout > 0 && c.ReadyTimeout <= time.Hour, "ready timeout %v is outside (0s, 1h]", c.ReadyTimeout)
	check(c.StartDelay > 0 && c.StartDelay <= time.Minute, "start delay %v is outside (0s, 1m]", c.StartDelay)
	check(c.Grace > 0 && c.Grace <= time.Hour, "grace %v is outside (0s, 1h]", c.Grace)
	if err := c.Engine.Validate(); err != nil {
		errs = append(errs, err)
	}
	if len(errs) == 0 {
		return nil
	}
	// One line, each problem named.
	msgs := make([]string, len(errs))
	for i, e := range errs {
		msgs[i] = strings.ReplaceAll(e.Error(), "\n", "; ")
	}
	return errors.New(strings.Join(msgs, "; "))
}

// WorkerResult is what the run knows of one worker.
type WorkerResult struct {
	Addr string  `json:"addr"`
	Name string  `json:"name"`
	Node string  `json:"node,omitempty"`
	Slot int     `json:"slot"`
	Rate float64 `json:"rate"` // its share
	// Offset is its clock minus the coordinator's, as estimated at ready.
	Offset time.Duration `json:"offset"`
	// FirstSend is when it sent its first call, in the coordinator's clock.
	FirstSend time.Time `json:"firstSend,omitzero"`
	Windows   int       `json:"windows"` // windows of it merged
	Sent      int64     `json:"sent"`    // calls of it merged
	// Lost: it stopped reporting; LostAt is how far into the run (from
	// t0) that was seen, Missing the calls of its share not counted.
	Lost       bool          `json:"lost,omitempty"`
	LostAt     time.Duration `json:"lostAt,omitempty"`
	LostReason string        `json:"lostReason,omitempty"`
	Missing    int64         `json:"missing,omitempty"`
}

// Result is a distributed run's outcome.
type Result struct {
	RunID   string         `json:"run"`
	T0      time.Time      `json:"t0"`
	Summary *Window        `json:"summary"`
	Workers []WorkerResult `json:"workerResults"`
	// Asked is the workers waited for; Started those that ran. Note says
	// why they differ.
	Asked   int    `json:"asked"`
	Started int    `json:"started"`
	Note    string `json:"note,omitempty"`
	// StartSkew is the latest first send minus the earliest.
	StartSkew time.Duration `json:"startSkew"`
	Degraded  bool          `json:"degraded,omitempty"`
	// GeneratorBound counts the windows where the load was the bottleneck.
	GeneratorBound int `json:"generatorBoundWindows"`
}

// FindWith returns a finder of the workers' addresses through discovery,
// the way the frontend finds its backends: the callable endpoints of spec.
func FindWith(src discovery.Source, spec discovery.Spec) func(context.Context) ([]string, error) {
	return func(ctx context.Context) ([]string, error) {
		eps, err := src.Resolve(ctx, spec)
		if err != nil {
			return nil, err
		}
		var addrs []string
		for _, e := range eps {
			if e.Callable() {
				addrs = append(addrs, e.Addr)
			}
		}
		return addrs, nil
	}
}

// Coordinator runs one distributed run.
type Coordinator struct {
	cfg  Config
	find func(context.Context) ([]string, error)
	dial []grpc.DialOption
}

// NewCoordinator checks cfg; find lists the workers' addresses (see
// FindWith), dial adds to the options of each worker's connection.
func NewCoordinator(cfg Config, find func(context.Context) ([]string, error), dial ...grpc.DialOption) (*Coordinator, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	return &Coordinator{cfg: cfg, find: find,
		dial: append([]grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}, dial...)}, nil
}

// RunID is the run's id.
func (c *Coordinator) RunID() string { return c.cfg.RunID }

// peer is one worker's stream during the ready phase and the run.
type peer struct {
	addr   string
	cc     *grpc.ClientConn
	cancel context.CancelFunc
	stream knowingnodev1.LoadWorkerService_RunClient
	ready  *knowingnodev1.WorkerReady
	offset time.Duration
	err    error
}

func (p *peer) close() {
	if p.cancel != nil {
		p.cancel()
	}
	if p.cc != nil {
		p.cc.Close()
	}
}

// prepare opens addr's stream under the run's ctx and sends the plan; it
// returns once the worker is ready, refuses, or readyCtx ends.
func (c *Coordinator) prepare(ctx, readyCtx context.Context, addr string, plan *knowingnodev1.WorkerPlan) *peer {
	p := &peer{addr: addr}
	cc, err := grpc.NewClient(addr, c.dial...)
	if err != nil {
		p.err = err
		return p
	}
	p.cc = cc
	sctx, cancel := context.WithCancel(ctx)
	p.cancel = cancel
	// Until ready, the stream lives only as long as the ready phase.
	detach := context.AfterFunc(readyCtx, cancel)
	p.err = func() error {
		stream, err := knowingnodev1.NewLoadWorkerServiceClient(cc).Run(sctx, grpc.WaitForReady(true))
		if err != nil {
			return err
		}
		p.stream = stream
		sent := time.Now()
		if err := stream.Send(&knowingnodev1.LoadWorkerServiceRunRequest{Msg: &knowingnodev1.LoadWorkerServiceRunRequest_Plan{Plan: plan}}); err != nil {
			return err
		}
		resp, err := stream.Recv()
		if err != nil {
			return err
		}
		got := time.Now()
		if p.ready = resp.GetReady(); p.ready == nil {
			return errors.New("answered the plan with something other than ready")
		}
		// Cristian's estimate: the worker read its clock halfway through
		// the round trip.
		p.offset = p.ready.GetClock().AsTime().Sub(sent.Add(got.Sub(sent) / 2))
		return nil
	}()
	if !detach() && p.err == nil {
		p.err = fmt.Errorf("ready too late: %w", context.Cause(readyCtx))
	}
	return p
}

// gather finds workers and prepares them until Workers are ready or the
// ready timeout passes; it returns the ready peers (at most Workers, the
// first by address) and what failed.
func (c *Coordinator) gather(ctx context.Context, plan *knowingnodev1.WorkerPlan) (ready []*peer, failed []string) {
	readyCtx, stop := context.WithTimeout(ctx, c.cfg.ReadyTimeout)
	defer stop()
	var (
		mu      sync.Mutex
		results []*peer
		wg      sync.WaitGroup
	)
	kick := make(chan struct{}, 1)
	busy := map[string]bool{} // preparing or ready
	lastTry := map[string]time.Time{}
	failures := map[string]string{}
	collect := func() {
		mu.Lock()
		defer mu.Unlock()
		for _, p := range results {
			if p.err != nil {
				busy[p.addr] = false
				// A retry cut short by the phase's end does not hide
				// why the worker failed before.
				if failures[p.addr] == "" || readyCtx.Err() == nil {
					failures[p.addr] = p.err.Error()
				}
				p.close()
				continue
			}
			delete(failures, p.addr)
			ready = append(ready, p)
		}
		results = nil
	}
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for len(ready) < c.cfg.Workers {
		addrs, err := c.find(readyCtx)
		if err != nil {
			failures["discovery"] = err.Error()
		} else {
			delete(failures, "discovery")
		}
		for _, a := range addrs {
			if busy[a] || time.Since(lastTry[a]) < time.Second {
				continue
			}
			busy[a], lastTry[a] = true, time.Now()
			wg.Go(func() {
				p := c.prepare(ctx, readyCtx, a, plan)
				mu.Lock()
				results = append(results, p)
				mu.Unlock()
				select {
				case kick <- struct{}{}:
				default:
				}
			})
		}
		collect()
		if len(ready) >= c.cfg.Workers {
			break
		}
		select {
		case <-readyCtx.Done():
		case <-kick:
		case <-tick.C:
		}
		if readyCtx.Err() != nil {
			break
		}
	}
	// Peers still preparing are stopped with the ready phase, then joined.
	stop()
	wg.Wait()
	collect()
	slices.SortFunc(ready, func(a, b *peer) int { return strings.Compare(a.addr, b.addr) })
	if len(ready) > c.cfg.Workers {
		for _, p := range ready[c.cfg.Workers:] {
			p.close()
		}
		ready = ready[:c.cfg.Workers]
	}
	for a, f := range failures {
		failed = append(failed, a+": "+f)
	}
	slices.Sort(failed)
	return ready, failed
}

// event is what a worker's stream delivered.
type event struct {
	w      int
	window *knowingnodev1.WorkerWindow
	done   *knowingnodev1.WorkerDone
	err    error
	at     time.Time
}

// Run runs the test: it waits for the workers, starts them at one t0,
// and merges their windows as they arrive, handing each merged window to
// onWindow (from this goroutine, in order). Every goroutine it starts has
// ended when it returns.
func (c *Coordinator) Run(ctx context.Context, onWindow func(*Window)) (*Result, error) {
	cfg := c.cfg
	e := cfg.Engine
	plan := &knowingnodev1.WorkerPlan{RunId: cfg.RunID, Target: cfg.Target, Rate: e.Rate, Concurrency: int32(e.Concurrency),
		Duration: durationpb.New(e.Duration), Warmup: durationpb.New(e.Warmup), Window: durationpb.New(e.Window), Timeout: durationpb.New(e.Timeout)}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	ready, failed := c.gather(ctx, plan)
	defer func() {
		for _, p := range ready {
			p.close()
		}
	}()
	res := &Result{RunID: cfg.RunID, Asked: cfg.Workers, Started: len(ready)}
	if len(ready) < cfg.Workers {
		why := fmt.Sprintf("%d of %d workers ready within %v", len(ready), cfg.Workers, cfg.ReadyTimeout)
		if len(failed) > 0 {
			why += " (" + strings.Join(failed, "; ") + ")"
		}
		if cfg.ReadyPolicy == ReadyAbort || len(ready) < cfg.MinWorkers {
			return res, fmt.Errorf("%s: not starting (ready policy %s, at least %d)", why, cfg.ReadyPolicy, cfg.MinWorkers)
		}
		res.Note = why + fmt.Sprintf(": started with %d, sharing the whole rate (ready policy %s)", len(ready), cfg.ReadyPolicy)
	}
	if err := ctx.Err(); err != nil {
		return res, err
	}

	n := len(ready)
	res.T0 = time.Now().Add(cfg.StartDelay)
	st := newState(cfg, res.T0, n)
	st.onLose = func(i int) { ready[i].cancel() }
	for i, p := range ready {
		share, _ := Split(e.Rate, i, n)
		st.workers[i] = &workerState{WorkerResult: WorkerResult{Addr: p.addr, Name: p.ready.GetWorker(), Node: p.ready.GetNode(),
			Slot: i, Rate: share.Rate, Offset: p.offset}, share: share, parts: map[int]part{}}
		start := &knowingnodev1.WorkerStart{Index: int32(i), Workers: int32(n), T0: timestamppb.New(res.T0.Add(p.offset))}
		err := p.stream.Send(&knowingnodev1.LoadWorkerServiceRunRequest{Msg: &knowingnodev1.LoadWorkerServiceRunRequest_Start{Start: start}})
		if err == nil {
			err = p.stream.CloseSend()
		}
		if err != nil {
			st.lose(i, time.Now(), fmt.Sprintf("start not delivered: %v", err))
		}
	}

	events := make(chan event)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	for i, p := range ready {
		wg.Go(func() {
			for {
				resp, err := p.stream.Recv()
				ev := event{w: i, err: err, at: time.Now()}
				if err == nil {
					ev.window, ev.done = resp.GetWindow(), resp.GetDone()
				}
				select {
				case events <- ev:
				case <-ctx.Done():
					return
				}
				if err != nil || ev.done != nil {
					return
				}
			}
		})
	}

	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		now := time.Now()
		for _, w := range st.emit(now) {
			if onWindow != nil {
				onWindow(w)
			}
		}
		if cfg.LostPolicy == LostAbort && st.anyLost() {
			res.finish(st)
			return res, fmt.Errorf("run %s: %s (lost policy %s)", cfg.RunID, st.lostLine(), LostAbort)
		}
		if st.over() {
			break
		}
		timer.Reset(time.Until(st.deadline(st.next)))
		select {
		case ev := <-events:
			st.receive(ev)
		case <-timer.C:
		case <-ctx.Done():
			res.finish(st)
			return res, ctx.Err()
		}
	}
	res.finish(st)
	return res, nil
}

// finish fills the result from the run's state.
func (r *Result) finish(st *state) {
	r.Summary = st.summary()
	var first, last time.Time
	for _, w := range st.workers {
		r.Workers = append(r.Workers, w.WorkerResult)
		if t := w.FirstSend; !t.IsZero() {
			if first.IsZero() || t.Before(first) {
				first = t
			}
			if t.After(last) {
				last = t
			}
		}
	}
	r.StartSkew = last.Sub(first)
	// A worker that finished says how many calls it sent in all: the
	// merge must hold exactly those.
	for _, w := range st.workers {
		if w.done && !w.Lost && w.doneSent != w.Sent && w.doneSent != 0 {
			r.Note = strings.TrimPrefix(r.Note+fmt.Sprintf("; %s sent %d calls, %d merged", w.Name, w.doneSent, w.Sent), "; ")
		}
	}
	r.Degraded = st.anyLost()
	r.GeneratorBound = st.bound
}
