package main

// The distributed modes of bin/load: "worker" serves one part of a run,
// "coordinate" runs a test on many workers, "merge" merges the workers'
// files offline. See internal/load/dist.

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"

	knowingnodev1 "github.com/knowingnode/knowingnode/gen/knowingnode/v1"
	"github.com/knowingnode/knowingnode/internal/discovery"
	"github.com/knowingnode/knowingnode/internal/load/dist"
	"github.com/knowingnode/knowingnode/internal/load/engine"
	"github.com/knowingnode/knowingnode/loadtest/plot"
)

// Exit codes of the distributed modes.
const (
	exitOK        = 0
	exitError     = 1
	exitFlags     = 2
	exitThreshold = 3 // the merged result broke a --max-* bound
)

// subcommand runs a distributed mode when args name one.
func subcommand(args []string) (code int, ok bool) {
	if len(args) == 0 {
		return 0, false
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	switch args[0] {
	case "worker":
		return workerMain(ctx, args[1:], os.Stdout, os.Stderr), true
	case "coordinate":
		return coordinateMain(ctx, args[1:], os.Stdout, os.Stderr), true
	case "merge":
		return mergeMain(args[1:], os.Stdout, os.Stderr), true
	}
	return 0, false
}

// flagErr prints a flag error in one line and returns the exit code.
func flagErr(stderr io.Writer, mode string, err error) int {
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	fmt.Fprintf(stderr, "load %s: %v\n", mode, err)
	return exitFlags
}

func newFlagSet(mode string, stdout io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("load "+mode, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {
		fs.SetOutput(stdout)
		fs.PrintDefaults()
	}
	return fs
}

// workerMain: load worker [worker flags] -- [the target flags of a single run].
// What it loads is those flags' target, by the name --target-name; nothing
// a coordinator sends is dialed.
func workerMain(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("worker", stdout)
	listen := fs.String("listen", ":9300", "gRPC address to serve LoadWorkerService on")
	name := fs.String("name", os.Getenv("POD_NAME"), "this worker's name in results (default $POD_NAME, else the host name)")
	node := fs.String("node", os.Getenv("NODE_NAME"), "this worker's node (default $NODE_NAME)")
	targetName := fs.String("target-name", "default", "the name coordinators load the target by")
	maxRate := fs.Float64("max-rate", 100000, "highest total rate of a run this worker takes part in")
	maxDuration := fs.Duration("max-duration", time.Hour, "longest warm-up plus duration of a run")
	jsonFile := fs.String("json", "", "write each window of each run as a JSON line (with its histogram) to this file (- for stdout), for load merge")
	once := fs.Bool("once", false, "exit after one run (a worker of a Job)")
	var targetArgs []string
	if i := indexOf(args, "--"); i >= 0 {
		args, targetArgs = args[:i], args[i+1:]
	}
	if err := fs.Parse(args); err != nil {
		return flagErr(stderr, "worker", err)
	}
	if fs.NArg() > 0 {
		return flagErr(stderr, "worker", fmt.Errorf("unexpected argument %q: the target's flags go after --", fs.Arg(0)))
	}
	o, err := parseFlags(targetArgs)
	if err != nil {
		return flagErr(stderr, "worker", fmt.Errorf("target flags after --: %w", err))
	}
	if *name == "" {
		*name, _ = os.Hostname()
	}
	log := slog.New(slog.NewJSONHandler(stderr, nil))
	call, closeCall, err := newCaller(o, nil)
	if err != nil {
		fmt.Fprintf(stderr, "load worker: %v\n", err)
		return exitError
	}
	defer closeCall()

	var lines *lineWriter
	if *jsonFile != "" {
		if lines, err = openLines(*jsonFile, stdout); err != nil {
			fmt.Fprintf(stderr, "load worker: --json: %v\n", err)
			return exitError
		}
		defer lines.close()
	}
	ranOnce := make(chan struct{})
	var endOnce sync.Once
	w := dist.NewWorker(dist.WorkerOptions{Name: *name, Node: *node, MaxRate: *maxRate, MaxDuration: *maxDuration,
		Targets: map[string]engine.Caller{*targetName: call},
		OnRunEnd: func() {
			if *once {
				endOnce.Do(func() { close(ranOnce) })
			}
		},
		OnWindow: func(l dist.WorkerLine) {
			if lines != nil {
				lines.write(l)
			}
		}})
	lis, err := net.Listen("tcp", *listen)
	if err != nil {
		fmt.Fprintf(stderr, "load worker: --listen: %v\n", err)
		return exitError
	}
	// A coordinator that vanishes (its node gone) is noticed by keepalive,
	// which ends the run's stream and so its calls.
	srv := grpc.NewServer(grpc.KeepaliveParams(keepalive.ServerParameters{Time: 15 * time.Second, Timeout: 5 * time.Second}))
	knowingnodev1.RegisterLoadWorkerServiceServer(srv, w)
	hs := health.NewServer()
	healthpb.RegisterHealthServer(srv, hs)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(lis) }()
	log.Info("serving", "addrs", []string{"grpc=" + lis.Addr().String()}, "worker", *name, "target", *targetName)
	select {
	case <-ctx.Done():
	case <-ranOnce:
	case err := <-served:
		fmt.Fprintf(stderr, "load worker: %v\n", err)
		return exitError
	}
	hs.Shutdown()
	srv.GracefulStop()
	<-served
	return exitOK
}

func indexOf(args []string, s string) int {
	for i, a := range args {
		if a == s {
			return i
		}
	}
	return -1
}

// lineWriter writes JSON lines, flushing each, from any goroutine.
type lineWriter struct {
	mu   sync.Mutex
	f    *os.File
	w    *bufio.Writer
	err  error
	file string
}

func openLines(file string, stdout io.Writer) (*lineWriter, error) {
	if file == "-" {
		return &lineWriter{w: bufio.NewWriter(stdout), file: file}, nil
	}
	f, err := os.Create(file)
	if err != nil {
		return nil, err
	}
	return &lineWriter{f: f, w: bufio.NewWriter(f), file: file}, nil
}

func (l *lineWriter) write(v any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.err != nil {
		return
	}
	b, err := json.Marshal(v)
	if err == nil {
		b = append(b, '\n')
		_, err = l.w.Write(b)
	}
	if err == nil {
		err = l.w.Flush()
	}
	l.err = err
}

func (l *lineWriter) close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	err := l.err
	if l.f != nil {
		err = errors.Join(err, l.f.Close())
	}
	if err != nil {
		return fmt.Errorf("--json %s: %w", l.file, err)
	}
	return nil
}

// distOutput prints and writes a distributed run's merged windows and
// summary in the shape of a single run's, plus the workers' figures.
type distOutput struct {
	out     io.Writer
	lines   *lineWriter
	rep     *reporter // for its live line
	windows []*engine.Stats
	plot    string
	fanout  bool
}

func newDistOutput(out, stdout io.Writer, jsonFile, plotFile string, fanout bool) (*distOutput, error) {
	d := &distOutput{out: out, rep: &reporter{fanout: fanout}, plot: plotFile, fanout: fanout}
	if jsonFile != "" {
		l, err := openLines(jsonFile, stdout)
		if err != nil {
			return nil, fmt.Errorf("--json: %w", err)
		}
		d.lines = l
	}
	return d, nil
}

type windowLine struct {
	Type string `json:"type"`
	*dist.Window
}

// summaryLine is the summary's line: the merged summary, then the run.
type summaryLine struct {
	Type string `json:"type"`
	*dist.Window
	Run            string              `json:"run"`
	T0             time.Time           `json:"t0"`
	Asked          int                 `json:"asked"`
	Started        int                 `json:"started"`
	Note           string              `json:"note,omitempty"`
	StartSkew      time.Duration       `json:"startSkew"`
	GeneratorBound int                 `json:"generatorBoundWindows"`
	WorkerResults  []dist.WorkerResult `json:"workerResults"`
	Violations     []string            `json:"violations,omitempty"`
}

func (d *distOutput) window(w *dist.Window) {
	d.windows = append(d.windows, w.Stats)
	line := d.rep.line(w.Stats) + fmt.Sprintf("  workers %d/%d", w.Workers, w.Expected)
	if w.Missing > 0 {
		line += fmt.Sprintf(" missing %d", w.Missing)
	}
	if w.Degraded {
		line += " DEGRADED"
	}
	if w.GeneratorBound {
		line += fmt.Sprintf(" GENERATOR-BOUND (worker cpu %.2f)", w.MaxWorkerCPU)
	}
	fmt.Fprintln(d.out, line)
	if d.lines != nil {
		d.lines.write(windowLine{Type: "window", Window: w})
	}
}

func (d *distOutput) close(res *dist.Result, violations []string) error {
	var err error
	if res != nil && res.Summary != nil {
		s := res.Summary
		fmt.Fprintf(d.out, "summary: run %s, %d of %d workers started, start skew %v: %d sent (%.1f/s of %g asked), %d ok, %d failed %s, %d late, %d dropped, p50 %v p90 %v p99 %v max %v, pods %s\n",
			res.RunID, res.Started, res.Asked, res.StartSkew.Round(time.Microsecond), s.Sent, s.Rate, s.RequestedRate, s.OK, s.Failed, codes(s.ByCode), s.Late, s.Dropped,
			round(s.Latency.P50), round(s.Latency.P90), round(s.Latency.P99), round(s.Latency.Max), shares(s.ByPod, s.OK))
		if res.Note != "" {
			fmt.Fprintf(d.out, "note: %s\n", res.Note)
		}
		if res.GeneratorBound > 0 {
			fmt.Fprintf(d.out, "generator-bound: %d windows where the workers, not the tier, limited the rate\n", res.GeneratorBound)
		}
		for _, w := range res.Workers {
			if w.Lost {
				fmt.Fprintf(d.out, "DEGRADED: worker %s (%s) lost %v after t0: %s; %d calls of its share never counted\n", w.Name, w.Addr, w.LostAt, w.LostReason, w.Missing)
			}
		}
		for _, v := range violations {
			fmt.Fprintf(d.out, "threshold: %s\n", v)
		}
		if d.lines != nil {
			d.lines.write(summaryLine{Type: "summary", Window: s, Run: res.RunID, T0: res.T0, Asked: res.Asked, Started: res.Started,
				Note: res.Note, StartSkew: res.StartSkew, GeneratorBound: res.GeneratorBound, WorkerResults: res.Workers, Violations: violations})
		}
		if d.plot != "" {
			if perr := plot.WritePNG(d.plot, d.windows, s.Stats, d.fanout); perr != nil {
				err = fmt.Errorf("--plot: %w", perr)
			}
		}
	}
	if d.lines != nil {
		err = errors.Join(err, d.lines.close())
	}
	return err
}

// coordinateMain: load coordinate --workers-target SPEC --workers N ...
func coordinateMain(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("coordinate", stdout)
	var cfg dist.Config
	var th dist.Thresholds
	workersTarget := fs.String("workers-target", "", "where the workers are, as the frontend finds backends: dns:///name:port (a headless Service), srv://, statefulset://, static:///a:port,b:port or kubernetes:///service.namespace:port")
	kubeconfig := fs.String("kubeconfig", "", "kubernetes:/// workers: the kubeconfig (default: in-cluster)")
	fs.StringVar(&cfg.RunID, "run-id", "", "the run's id (default: random)")
	fs.StringVar(&cfg.Target, "target-name", "default", "the target every worker was configured with, by name")
	fs.IntVar(&cfg.Workers, "workers", 1, "workers to wait for")
	fs.IntVar(&cfg.MinWorkers, "min-workers", 1, "with --ready-policy partial: the fewest to start with")
	fs.DurationVar(&cfg.ReadyTimeout, "ready-timeout", time.Minute, "how long to wait for the workers")
	fs.StringVar(&cfg.ReadyPolicy, "ready-policy", dist.ReadyAbort, "fewer workers ready in time: abort, or partial (start with those, sharing the whole rate)")
	fs.StringVar(&cfg.LostPolicy, "lost-policy", dist.LostContinue, "a worker lost mid-run: continue (the run is marked degraded) or abort")
	fs.DurationVar(&cfg.StartDelay, "start-delay", time.Second, "t0 is this long after the last worker is ready")
	fs.Float64Var(&cfg.Engine.Rate, "rate", 100, "calls per second, over all workers")
	fs.IntVar(&cfg.Engine.Concurrency, "concurrency", 64, "calls in flight at most, per worker")
	fs.DurationVar(&cfg.Engine.Duration, "duration", 10*time.Second, "length of the measured run")
	fs.DurationVar(&cfg.Engine.Warmup, "warmup", 0, "unreported warm-up before the measured run")
	fs.DurationVar(&cfg.Engine.Window, "window", time.Second, "length of a merged window")
	fs.DurationVar(&cfg.Engine.Timeout, "timeout", 10*time.Second, "timeout of one call")
	fs.DurationVar(&th.MaxP99, "max-p99", 0, "fail (exit 3) when the merged p99 is above this (0: no bound)")
	fs.Float64Var(&th.MaxErrorRate, "max-error-rate", 0, "fail (exit 3) when more than this fraction of the calls failed (0: no bound)")
	fanout := fs.Bool("fanout", false, "the workers call a fan-out (frontend) tier: plot the backends' shares too")
	jsonFile := fs.String("json", "", "write each merged window, then the summary, as JSON lines to this file (- for stdout)")
	plotFile := fs.String("plot", "", "draw the merged run to this PNG file")
	if err := fs.Parse(args); err != nil {
		return flagErr(stderr, "coordinate", err)
	}
	if fs.NArg() > 0 {
		return flagErr(stderr, "coordinate", fmt.Errorf("unexpected argument %q", fs.Arg(0)))
	}
	if th.MaxErrorRate < 0 || th.MaxErrorRate > 1 || th.MaxP99 < 0 {
		return flagErr(stderr, "coordinate", fmt.Errorf("--max-error-rate %g is outside 0..1, or --max-p99 %v is negative", th.MaxErrorRate, th.MaxP99))
	}
	spec, err := discovery.ParseSpec(*workersTarget)
	if err != nil {
		return flagErr(stderr, "coordinate", fmt.Errorf("invalid value for flag --workers-target: %w", err))
	}
	sources := &discovery.Sources{Kubeconfig: *kubeconfig}
	defer sources.Close()
	src, err := sources.For(spec)
	if err != nil {
		fmt.Fprintf(stderr, "load coordinate: %v\n", err)
		return exitError
	}
	c, err := dist.NewCoordinator(cfg, dist.FindWith(src, spec))
	if err != nil {
		return flagErr(stderr, "coordinate", err)
	}
	out, err := newDistOutput(stderr, stdout, *jsonFile, *plotFile, *fanout)
	if err != nil {
		fmt.Fprintf(stderr, "load coordinate: %v\n", err)
		return exitError
	}
	res, runErr := c.Run(ctx, out.window)
	var violations []string
	if res != nil && res.Summary != nil {
		violations = th.Check(res.Summary.Stats)
	}
	if err := errors.Join(out.close(res, violations)); err != nil {
		runErr = errors.Join(runErr, err)
	}
	switch {
	case runErr != nil:
		fmt.Fprintf(stderr, "load coordinate: %v\n", runErr)
		return exitError
	case len(violations) > 0:
		fmt.Fprintf(stderr, "load coordinate: %s\n", strings.Join(violations, "; "))
		return exitThreshold
	}
	return exitOK
}

// mergeMain: load merge [--json F] [--plot F] FILE...
func mergeMain(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("merge", stdout)
	var th dist.Thresholds
	maxGap := fs.Duration("max-start-gap", dist.DefaultMaxStartGap, "refuse files whose t0 lie further apart")
	jsonFile := fs.String("json", "", "write the merged windows, then the summary, as JSON lines to this file (- for stdout)")
	plotFile := fs.String("plot", "", "draw the merged run to this PNG file")
	fanout := fs.Bool("fanout", false, "a fan-out (frontend) tier: plot the backends' shares too")
	fs.DurationVar(&th.MaxP99, "max-p99", 0, "fail (exit 3) when the merged p99 is above this")
	fs.Float64Var(&th.MaxErrorRate, "max-error-rate", 0, "fail (exit 3) when more than this fraction of the calls failed")
	if err := fs.Parse(args); err != nil {
		return flagErr(stderr, "merge", err)
	}
	if fs.NArg() == 0 {
		return flagErr(stderr, "merge", errors.New("no file to merge: load merge [flags] FILE..."))
	}
	files := map[string][]dist.WorkerLine{}
	for _, name := range fs.Args() {
		f, err := os.Open(name)
		if err != nil {
			fmt.Fprintf(stderr, "load merge: %v\n", err)
			return exitError
		}
		ls, err := dist.ReadWorkerLines(name, f)
		f.Close()
		if err != nil {
			fmt.Fprintf(stderr, "load merge: %v\n", err)
			return exitError
		}
		if _, dup := files[name]; dup {
			fmt.Fprintf(stderr, "load merge: %s is named twice\n", name)
			return exitError
		}
		files[name] = ls
	}
	res, windows, err := dist.MergeFiles(files, *maxGap)
	if err != nil {
		fmt.Fprintf(stderr, "load merge: %v\n", err)
		return exitError
	}
	out, err := newDistOutput(stderr, stdout, *jsonFile, *plotFile, *fanout)
	if err != nil {
		fmt.Fprintf(stderr, "load merge: %v\n", err)
		return exitError
	}
	for _, w := range windows {
		out.window(w)
	}
	violations := th.Check(res.Summary.Stats)
	if err := out.close(res, violations); err != nil {
		fmt.Fprintf(stderr, "load merge: %v\n", err)
		return exitError
	}
	if len(violations) > 0 {
		return exitThreshold
	}
	return exitOK
}
