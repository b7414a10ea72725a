package dist

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync/atomic"
	"syscall"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	knowingnodev1 "github.com/knowingnode/knowingnode/gen/knowingnode/v1"
	"github.com/knowingnode/knowingnode/internal/load/engine"
)

// WorkerOptions configure a Worker.
type WorkerOptions struct {
	// Name and Node identify the worker (its pod and node) in results.
	Name, Node string
	// Targets are what the worker may load, by name, built at its start.
	// A plan names one; nothing the coordinator sends is ever dialed.
	Targets map[string]engine.Caller
	// MaxRate bounds the run's total rate a plan may ask; 0 means
	// engine.MaxRate. MaxDuration bounds warm-up plus duration; 0 means
	// engine.MaxDuration. MaxStartDelay bounds how far ahead t0 may be
	// (default 5 minutes), so a bad plan cannot park a worker.
	MaxRate       float64
	MaxDuration   time.Duration
	MaxStartDelay time.Duration
	// OnWindow, when set, also gets each window (for the worker's own
	// JSON lines, which bin/load merge reads).
	OnWindow func(WorkerLine)
	// OnRunEnd, when set, is called after each started run has ended (a
	// worker of an Indexed Job exits after its one run).
	OnRunEnd func()
}

// WorkerLine is one window of one worker, as bin/load --worker writes it
// (JSON lines) and `bin/load merge` reads it back.
type WorkerLine struct {
	Type    string        `json:"type"` // "worker-window"
	Run     string        `json:"run"`
	Worker  string        `json:"worker"`
	Node    string        `json:"node,omitempty"`
	Slot    int           `json:"slot"`    // the worker's index
	Workers int           `json:"workers"` // started workers
	T0      time.Time     `json:"t0"`      // in the worker's clock
	Warmup  time.Duration `json:"warmup"`
	Window  time.Duration `json:"window"`
	// Duration is the run's measured duration.
	Duration time.Duration `json:"duration"`
	Rate     float64       `json:"runRate"` // the run's total rate
	Index    int           `json:"index"`
	CPU      float64       `json:"cpu"`
	Cores    float64       `json:"cores"`
	// FirstSend is when the worker sent its first call, in its clock.
	FirstSend time.Time `json:"firstSend,omitzero"`
	// Hist is the window's HdrHistogram (V2 compressed, base64), in µs.
	Hist string `json:"hist,omitempty"`
	*engine.Stats
}

// Worker serves knowingnode.v1.LoadWorkerService: one run at a time.
type Worker struct {
	knowingnodev1.UnimplementedLoadWorkerServiceServer
	o    WorkerOptions
	busy atomic.Bool
}

// NewWorker returns a worker that loads o.Targets.
func NewWorker(o WorkerOptions) *Worker {
	if o.MaxRate <= 0 {
		o.MaxRate = engine.MaxRate
	}
	if o.MaxDuration <= 0 {
		o.MaxDuration = engine.MaxDuration
	}
	if o.MaxStartDelay <= 0 {
		o.MaxStartDelay = 5 * time.Minute
	}
	return &Worker{o: o}
}

// planConfig checks a plan against the worker's targets and limits.
func (w *Worker) planConfig(p *knowingnodev1.WorkerPlan) (engine.Config, engine.Caller, error) {
	call, ok := w.o.Targets[p.GetTarget()]
	if !ok {
		return engine.Config{}, nil, status.Errorf(codes.NotFound, "target %q is not one this worker was configured with", p.GetTarget())
	}
	c := engine.Config{
		Rate: p.GetRate(), Concurrency: int(p.GetConcurrency()), Duration: p.GetDuration().AsDuration(),
		Warmup: p.GetWarmup().AsDuration(), Window: p.GetWindow().AsDuration(), Timeout: p.GetTimeout().AsDuration(),
		KeepHistograms: true, // each window's histogram goes to the coordinator
	}
	var errs []error
	if p.GetRunId() == "" || len(p.GetRunId()) > 128 {
		errs = append(errs, fmt.Errorf("run id %q is empty or longer than 128 bytes", p.GetRunId()))
	}
	if !(c.Rate > 0) || c.Rate > w.o.MaxRate {
		errs = append(errs, fmt.Errorf("rate %g is outside (0, %g]: a distributed run is open loop", c.Rate, w.o.MaxRate))
	}
	if c.Duration <= 0 || c.Warmup+c.Duration > w.o.MaxDuration {
		errs = append(errs, fmt.Errorf("warm-up %v plus duration %v is outside (0s, %v]", c.Warmup, c.Duration, w.o.MaxDuration))
	}
	if c.Window == 0 {
		errs = append(errs, errors.New("window is 0"))
	}
	if err := errors.Join(append(errs, c.Validate())...); err != nil {
		return engine.Config{}, nil, status.Error(codes.InvalidArgument, err.Error())
	}
	return c, call, nil
}

// Run implements LoadWorkerService.Run.
func (w *Worker) Run(stream knowingnodev1.LoadWorkerService_RunServer) error {
	if !w.busy.CompareAndSwap(false, true) {
		return status.Error(codes.ResourceExhausted, "this worker is already in a run")
	}
	defer w.busy.Store(false)
	ctx := stream.Context()

	req, err := stream.Recv()
	if err != nil {
		return err
	}
	plan := req.GetPlan()
	if plan == nil {
		return status.Error(codes.InvalidArgument, "the first message must be the plan")
	}
	cfg, call, err := w.planConfig(plan)
	if err != nil {
		return err
	}
	if err := stream.Send(&knowingnodev1.LoadWorkerServiceRunResponse{Msg: &knowingnodev1.LoadWorkerServiceRunResponse_Ready{
		Ready: &knowingnodev1.WorkerReady{Worker: w.o.Name, Node: w.o.Node, Clock: timestamppb.Now()}}}); err != nil {
		return err
	}
	req, err = stream.Recv()
	if err != nil {
		return err
	}
	start := req.GetStart()
	if start == nil {
		return status.Error(codes.InvalidArgument, "the second message must be the start")
	}
	share, err := Split(cfg.Rate, int(start.GetIndex()), int(start.GetWorkers()))
	if err != nil {
		return status.Error(codes.InvalidArgument, err.Error())
	}
	t0 := start.GetT0().AsTime()
	if d := time.Until(t0); d > w.o.MaxStartDelay || d < -cfg.Window {
		return status.Errorf(codes.InvalidArgument, "t0 %v is %v from now, outside -%v..%v", t0, d, cfg.Window, w.o.MaxStartDelay)
	}
	runRate := cfg.Rate
	cfg.Rate, cfg.Start, cfg.Phase = share.Rate, t0, share.Phase
	if w.o.OnRunEnd != nil {
		defer w.o.OnRunEnd()
	}

	// The stream's context is the run's: the coordinator cancelling the
	// stream, or its connection breaking, stops the calls. (The coordinator
	// closes its side after the start, so nothing is left to receive.)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	var first atomic.Int64 // unix nanoseconds of the first send
	counted := func(ctx context.Context) (engine.Result, error) {
		if first.Load() == 0 {
			first.CompareAndSwap(0, time.Now().UnixNano())
		}
		return call(ctx)
	}
	firstSend := func() *timestamppb.Timestamp {
		if n := first.Load(); n != 0 {
			return timestamppb.New(time.Unix(0, n))
		}
		return nil
	}

	cores := float64(runtime.GOMAXPROCS(0))
	lastCPU, lastAt := cpuTime(), time.Now()
	index := 0
	var sendErr error
	onWindow := func(s *engine.Stats) {
		now, c := time.Now(), cpuTime()
		cpu := 0.0
		if d := now.Sub(lastAt); d > 0 {
			cpu = (c - lastCPU).Seconds() / d.Seconds()
		}
		lastCPU, lastAt = c, now
		ww, err := encodeWindow(index, s, cpu, cores)
		if err == nil {
			ww.FirstSend = firstSend()
			err = stream.Send(&knowingnodev1.LoadWorkerServiceRunResponse{Msg: &knowingnodev1.LoadWorkerServiceRunResponse_Window{Window: ww}})
		}
		if err != nil && sendErr == nil {
			sendErr = err
			cancel()
		}
		if w.o.OnWindow != nil {
			l := WorkerLine{Type: "worker-window", Run: plan.GetRunId(), Worker: w.o.Name, Node: w.o.Node, Slot: share.Index, Workers: share.Workers,
				T0: t0, Warmup: cfg.Warmup, Window: cfg.Window, Duration: cfg.Duration, Rate: runRate, Index: index, CPU: cpu, Cores: cores, Stats: s}
			if fs := ww.GetFirstSend(); fs != nil {
				l.FirstSend = fs.AsTime()
			}
			if ww != nil {
				l.Hist = string(ww.Histogram)
			}
			w.o.OnWindow(l)
		}
		index++
	}
	sum, runErr := engine.Run(ctx, cfg, counted, onWindow)
	if sendErr != nil {
		return sendErr
	}
	done := &knowingnodev1.WorkerDone{Windows: int32(index), FirstSend: firstSend()}
	if sum != nil {
		done.Sent, done.Completed = sum.Sent, sum.Completed()
	}
	if runErr != nil {
		done.Error = runErr.Error()
	}
	return stream.Send(&knowingnodev1.LoadWorkerServiceRunResponse{Msg: &knowingnodev1.LoadWorkerServiceRunResponse_Done{Done: done}})
}

// cpuTime is the process's user plus system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
