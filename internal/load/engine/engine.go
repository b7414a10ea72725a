// Package engine drives calls at a fixed rate (open loop) or a fixed
// concurrency (closed loop) and reports, per time window and for the whole
// run, how many calls were sent, how they ended, how long they took and which
// pods, nodes and zones answered them.
//
// In open loop the calls follow an absolute schedule (see Schedule): over a
// duration d at rate r, call i of N = ⌈r × d⌉ is due at start + phase + i/r.
// A call's latency is measured from that intended time, not from when a
// free worker actually sent it, so a stalled server shows up as latency
// instead of silently slowing the load down (no coordinated omission).
// Calls that could not be sent on time are counted: Late ones waited for a
// free worker; Dropped ones were never sent, because every worker was busy
// and the backlog was full too. Dropped calls are not latency samples: the
// quantiles cover the calls made (ok or failed), and the summary's Dropped
// says how many are missing from them, so Sent + Dropped = N for a run that
// was not stopped.
package engine

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Limits of a run's configuration.
const (
	MaxRate        = 1e6
	MaxConcurrency = 10000
	MaxDuration    = 24 * time.Hour
	DefaultWindow  = time.Second
	DefaultTimeout = 10 * time.Second
)

// CodeDraining is the ByCode key of calls that met a draining backend, as
// the fan-out names them.
const CodeDraining = "DRAINING"

// ErrDraining marks a call refused because its backend announced, through
// gRPC health checking, that it is shutting down (NOT_SERVING): the channel
// did not call it. A Caller wraps it; the call counts as Draining, neither
// ok nor failed, and is no latency sample.
var ErrDraining = errors.New("backend is draining (its health is NOT_SERVING): not called")

// Hit is one pod that answered part of a call: a frontend's fan-out reports
// the backends it reached.
type Hit struct {
	Pod, Node, Zone string
	Code            codes.Code
	Calls           int  // how many calls this hit stands for; 0 means 1
	Draining        bool // the backend was draining and not called; Code is then ignored
}

// Result is what one call learned about who answered it.
type Result struct {
	// The pod that answered the call itself (for a frontend: the frontend).
	Pod, Node, Zone string
	// Backends reached by the call, for a tier that fans out; empty otherwise.
	Backends []Hit
	// Load is the load the pod reported with the call (ORCA), if any.
	Load *Load
}

// Caller makes one call. A non-nil error is the call's failure; its gRPC code
// (status.Code) is what the windows count, unless it wraps ErrDraining.
type Caller func(ctx context.Context) (Result, error)

// Config describes a run.
type Config struct {
	// Rate is calls per second in open loop; 0 selects closed loop, where
	// Concurrency workers call back to back.
	Rate float64
	// Phase delays the open loop's schedule: call i is due at the measured
	// start (Start + Warmup) + Phase + i/Rate, and the run ends at start +
	// Phase + Duration. A distributed run gives worker i of N the phase i/R,
	// so the N schedules interleave into the single one.
	Phase time.Duration
	// Concurrency bounds the calls in flight (open loop) or is the number of
	// workers (closed loop).
	Concurrency int
	// Duration of the measured run; with Count, whichever comes first ends
	// it. At least one is required.
	Duration time.Duration
	Count    int64
	// Warmup runs before the measured run; its calls are not reported.
	Warmup time.Duration
	// Window is the length of a reported window; 0 means DefaultWindow.
	Window time.Duration
	// Timeout bounds each call; 0 means DefaultTimeout.
	Timeout time.Duration
	// Start, when set, is the absolute time the run (its warm-up, then
	// its windows) begins; Run waits for it. Workers of one distributed run
	// share it, so their windows line up. Zero means now.
	Start time.Time
	// KeepHistograms hands each window its own copy of its latency
	// histogram (Stats.Hist), for callers that merge windows across
	// processes; otherwise a window's Hist is nil, since the engine reuses
	// its histograms to keep a long run's memory flat.
	KeepHistograms bool
}

// Validate checks c's ranges and names the field out of range.
func (c Config) Validate() error {
	var errs []error
	check := func(ok bool, format string, args ...any) {
		if !ok {
			errs = append(errs, fmt.Errorf(format, args...))
		}
	}
	check(c.Rate >= 0 && c.Rate <= MaxRate, "rate %g is outside 0..%g calls/s", c.Rate, float64(MaxRate))
	check(c.Phase >= 0 && c.Phase <= time.Hour, "phase %v is outside 0s..1h", c.Phase)
	check(c.Phase == 0 || c.Rate > 0, "phase %v needs a rate (open loop)", c.Phase)
	check(c.Concurrency >= 1 && c.Concurrency <= MaxConcurrency, "concurrency %d is outside 1..%d", c.Concurrency, MaxConcurrency)
	check(c.Duration >= 0 && c.Duration <= MaxDuration, "duration %v is outside 0s..%v", c.Duration, MaxDuration)
	check(c.Count >= 0, "count %d is negative", c.Count)
	check(c.Duration > 0 || c.Count > 0, "a duration or a count is required")
	check(c.Warmup >= 0 && c.Warmup <= MaxDuration, "warmup %v is outside 0s..%v", c.Warmup, MaxDuration)
	check(c.Window == 0 || c.Window >= 10*time.Millisecond && c.Window <= time.Hour, "window %v is outside 10ms..1h", c.Window)
	check(c.Timeout >= 0 && c.Timeout <= time.Hour, "timeout %v is outside 0s..1h", c.Timeout)
	return errors.Join(errs...)
}

// job is one call to make, with the time it should have been sent.
type job struct {
	intended time.Time
	late     bool
	measured bool // false in the warm-up
}

// Run makes calls as c says until the duration or count is reached or ctx
// ends, and returns the summary of the measured run. onWindow, when not nil,
// receives each window as it closes, from one goroutine, in order; it should
// return quickly. Every goroutine Run starts has ended when it returns.
func Run(ctx context.Context, c Config, call Caller, onWindow func(*Stats)) (*Stats, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	if c.Window == 0 {
		c.Window = DefaultWindow
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	start := time.Now()
	if !c.Start.IsZero() {
		if err := sleepUntil(ctx, c.Start); err != nil {
			return nil, err
		}
		start = c.Start
	}
	measureFrom := start.Add(c.Warmup)
	rec := newRecorder(measureFrom, c.KeepHistograms)
	var end time.Time
	if c.Duration > 0 {
		end = measureFrom.Add(c.Phase + c.Duration)
	}
	// The measured calls left to send, when a count is set (closed loop;
	// the open loop's schedule holds its count).
	budget := newBudget(0)
	if c.Rate == 0 {
		budget = newBudget(c.Count)
	}

	var workers sync.WaitGroup
	do := func(j job) {
		if j.measured && !budget.take() {
			return
		}
		if j.measured {
			rec.sent(j.late)
		}
		cctx, ccancel := context.WithTimeout(ctx, c.Timeout)
		res, err := call(cctx)
		ccancel()
		done := time.Now()
		if err != nil && stopping(ctx) {
			// The run was stopped under this call: its failure says
			// nothing about the target.
			return
		}
		switch {
		case !j.measured:
		case errors.Is(err, ErrDraining):
			rec.draining(res)
		default:
			rec.done(done.Sub(j.intended), res, status.Code(err))
		}
	}

	// Windows close on a ticker aligned with the measured start.
	windowsDone := make(chan struct{})
	stopWindows := make(chan struct{})
	go func() {
		defer close(windowsDone)
		select {
		case <-time.After(time.Until(measureFrom)):
		case <-stopWindows:
			return
		}
		t := time.NewTicker(c.Window)
		defer t.Stop()
		for {
			select {
			case now := <-t.C:
				w := rec.closeWindow(now)
				if onWindow != nil {
					onWindow(w)
				}
			case <-stopWindows:
				return
			}
		}
	}()

	if c.Rate > 0 {
		openLoop(ctx, c, start, measureFrom, end, rec, &workers, do)
	} else {
		closedLoop(ctx, c, measureFrom, end, budget, &workers, do)
	}
	workers.Wait()
	close(stopWindows)
	<-windowsDone
	now := time.Now()
	if now.After(measureFrom) {
		if w := rec.closeWindow(now); w.Sent > 0 || w.Completed() > 0 {
			if onWindow != nil {
				onWindow(w)
			}
		}
	}
	runEnd := now
	if !end.IsZero() && end.Before(now) {
		// The rate is over the time calls were being sent, not the tail
		// spent waiting for the last ones.
		runEnd = end
	}
	err := ctx.Err()
	if err == nil && stopping(ctx) {
		// The deadline passed and the workers saw it before the context's
		// own timer fired: the run was still cut by it.
		err = context.DeadlineExceeded
	}
	return rec.summary(runEnd, c.Rate), err
}

// openLoop sends the warm-up's calls, then the measured run's, each on its
// Schedule, and hands each call to an idle worker; when none is idle the
// call waits in a bounded backlog (late), and when that is full too it is
// dropped. Both are counted. With a duration, it returns at end even when
// the last call was due earlier, so the run lasts what was asked, unless a
// count ended the schedule first.
func openLoop(ctx context.Context, c Config, start, measureFrom, end time.Time, rec *recorder, workers *sync.WaitGroup, do func(job)) {
	idle := make(chan job)                   // unbuffered: a send succeeds only into an idle worker
	backlog := make(chan job, c.Concurrency) // bounded: at most one queued call per worker
	for range c.Concurrency {
		workers.Go(func() {
			for {
				// Late calls first: they are already behind.
				select {
				case j, ok := <-backlog:
					if !ok {
						return
					}
					do(j)
					continue
				default:
				}
				select {
				case j := <-idle:
					do(j)
				case j, ok := <-backlog:
					if !ok {
						return
					}
					do(j)
				}
			}
		})
	}
	defer close(backlog)

	t := time.NewTimer(time.Hour)
	defer t.Stop()
	sleep := func(d time.Duration) bool {
		t.Reset(d)
		select {
		case <-t.C:
			return true
		case <-ctx.Done():
			return false
		}
	}
	pace := func(from time.Time, s Schedule, measured bool) bool {
		var issued int64
		for {
			step := s.Next(issued, time.Since(from))
			if step.Done {
				return true
			}
			if step.Wait > 0 {
				if !sleep(step.Wait) {
					return false
				}
				continue
			}
			if ctx.Err() != nil {
				return false
			}
			for i := step.From; i < step.To; i++ {
				j := job{intended: from.Add(s.Due(i)), measured: measured}
				select {
				case idle <- j:
					continue
				default:
				}
				j.late = true
				select {
				case backlog <- j:
				default:
					if measured {
						rec.dropped(1)
					}
				}
			}
			issued = step.To
		}
	}
	if c.Warmup > 0 && !pace(start, NewSchedule(c.Rate, 0, c.Warmup, 0), false) {
		return
	}
	sched := NewSchedule(c.Rate, c.Phase, c.Duration, c.Count)
	if !pace(measureFrom, sched, true) {
		return
	}
	// A count reached before the duration ends the run (whichever first).
	if countFirst := c.Count > 0 && c.Count < NewSchedule(c.Rate, c.Phase, c.Duration, 0).N; !end.IsZero() && !countFirst {
		if d := time.Until(end); d > 0 {
			sleep(d)
		}
	}
}

// closedLoop runs Concurrency workers that call back to back.
func closedLoop(ctx context.Context, c Config, measureFrom, end time.Time, b *budget, workers *sync.WaitGroup, do func(job)) {
	for range c.Concurrency {
		workers.Go(func() {
			for !stopping(ctx) && !b.exhausted() {
				now := time.Now()
				if !end.IsZero() && !now.Before(end) {
					return
				}
				do(job{intended: now, measured: !now.Before(measureFrom)})
			}
		})
	}
}

// budget is the number of measured calls left; nil-like when unlimited.
type budget struct {
	mu        sync.Mutex
	limited   bool
	remaining int64
}

func newBudget(n int64) *budget { return &budget{limited: n > 0, remaining: n} }

func (b *budget) take() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.limited {
		return true
	}
	if b.remaining == 0 {
		return false
	}
	b.remaining--
	return true
}

func (b *budget) exhausted() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.limited && b.remaining == 0
}

// sleepUntil waits until t or until ctx ends.
func sleepUntil(ctx context.Context, t time.Time) error {
	d := time.Until(t)
	if d <= 0 {
		return nil
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// stopping reports whether the run's context has ended or is past its
// deadline: gRPC fails a call past the deadline before the context's timer
// has fired, and such a failure is the stop's, not the target's.
func stopping(ctx context.Context) bool {
	if ctx.Err() != nil {
		return true
	}
	d, ok := ctx.Deadline()
	return ok && !time.Now().Before(d)
}
