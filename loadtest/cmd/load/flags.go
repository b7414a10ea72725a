package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	knowingnodev1 "github.com/knowingnode/knowingnode/gen/knowingnode/v1"
	"github.com/knowingnode/knowingnode/internal/load/engine"
)

// options is the parsed command line.
type options struct {
	target      string
	call        string // identity, fanout or rest
	connections int
	balancing   string // pick_first or round_robin
	path        string // REST path
	fanout      *knowingnodev1.FanOutRequest
	engine      engine.Config
	jsonFile    string
	plotFile    string
	refresh     time.Duration // re-resolve the target this often with the frontend's discovery; 0: gRPC's dns resolver
	obs         observeOptions
}

const maxConnections = 1000

// parseFlags parses args; an error names the bad flag in one line.
func parseFlags(args []string) (*options, error) {
	o := &options{fanout: &knowingnodev1.FanOutRequest{}}
	fs := flag.NewFlagSet("load", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var mode string
	var count int
	fs.StringVar(&o.target, "target", "", "gRPC target (host:port, dns://[server]/name:port, static:///a:port,b:port, kubernetes:///service.namespace:port) or, for --call rest, the frontend's base URL")
	fs.StringVar(&o.call, "call", "identity", "what to call: identity (GetIdentity, either tier), fanout (a frontend's FanOut) or rest (a GET on the REST gateway)")
	fs.Float64Var(&o.engine.Rate, "rate", 10, "calls per second; 0 calls back to back with --concurrency workers (closed loop)")
	fs.IntVar(&o.engine.Concurrency, "concurrency", 10, "calls in flight at most (open loop) or workers (closed loop)")
	fs.DurationVar(&o.engine.Duration, "duration", 10*time.Second, "length of the measured run")
	fs.Int64Var(&o.engine.Count, "count", 0, "stop after this many calls (0: no limit)")
	fs.DurationVar(&o.engine.Warmup, "warmup", 0, "unreported warm-up before the measured run")
	fs.DurationVar(&o.engine.Window, "window", time.Second, "length of a reported window")
	fs.DurationVar(&o.engine.Timeout, "timeout", 10*time.Second, "timeout of one call")
	fs.IntVar(&o.connections, "connections", 1, "gRPC connections (clients) the calls rotate over")
	fs.DurationVar(&o.refresh, "refresh", 0, "re-resolve a dns, srv or statefulset target (or re-read a kubernetes:/// one) this often (the frontend's discovery), so calls reach pods added later; 0 leaves it to gRPC, which re-resolves only after a lost connection")
	fs.StringVar(&o.balancing, "balancing", "pick_first", "gRPC balancing within a connection: pick_first (one address, as a ClusterIP pins) or round_robin (every resolved address)")
	fs.StringVar(&o.fanout.Target, "fanout-target", "", "fanout: the frontend's target name (default: its default)")
	fs.StringVar(&mode, "fanout-mode", "each", "fanout: each or balanced")
	fs.IntVar(&count, "fanout-count", 0, "fanout: calls of a balanced fan-out")
	fs.StringVar(&o.path, "path", "/v1/fanout", "rest: the path (and query) to GET")
	fs.StringVar(&o.jsonFile, "json", "", "write each window, then the summary, as JSON lines to this file (- for stdout)")
	fs.StringVar(&o.plotFile, "plot", "", "draw rate, latency and each pod's share over time to this PNG file")
	addObserveFlags(fs, &o.obs)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			// -h is asked for: the usage goes to stdout, like the other binaries'.
			fs.SetOutput(os.Stdout)
			fs.Usage()
		}
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q: every option is a flag", fs.Arg(0))
	}
	var errs []error
	bad := func(flag, format string, args ...any) {
		errs = append(errs, fmt.Errorf("invalid value for flag --%s: %s", flag, fmt.Sprintf(format, args...)))
	}
	if o.target == "" {
		bad("target", "a target is required")
	}
	switch o.call {
	case "identity", "fanout", "rest":
	default:
		bad("call", "%q is not identity, fanout or rest", o.call)
	}
	switch o.balancing {
	case "pick_first", "round_robin":
	default:
		bad("balancing", "%q is not pick_first or round_robin", o.balancing)
	}
	switch strings.ToLower(mode) {
	case "each":
		o.fanout.Mode = knowingnodev1.FanOutMode_FAN_OUT_MODE_EACH
	case "balanced":
		o.fanout.Mode = knowingnodev1.FanOutMode_FAN_OUT_MODE_BALANCED
	default:
		bad("fanout-mode", "%q is not each or balanced", mode)
	}
	if count < 0 || count > 10000 {
		bad("fanout-count", "%d is outside 0..10000", count)
	}
	o.fanout.Count = int32(count)
	if o.connections < 1 || o.connections > maxConnections {
		bad("connections", "%d is outside 1..%d", o.connections, maxConnections)
	}
	if o.refresh < 0 || o.refresh > time.Hour || o.refresh > 0 && o.refresh < 100*time.Millisecond {
		bad("refresh", "%v is outside 100ms..1h (or 0: off)", o.refresh)
	}
	if o.refresh > 0 && (o.call == "rest" || strings.HasPrefix(o.target, staticScheme)) {
		bad("refresh", "works with a dns, srv or statefulset gRPC target, not %q with --call %s", o.target, o.call)
	}
	o.obs.validate(bad)
	if !strings.HasPrefix(o.path, "/") {
		bad("path", "%q does not start with /", o.path)
	}
	c := o.engine
	if c.Rate < 0 || c.Rate > engine.MaxRate {
		bad("rate", "%g is outside 0..%g", c.Rate, float64(engine.MaxRate))
	}
	if c.Concurrency < 1 || c.Concurrency > engine.MaxConcurrency {
		bad("concurrency", "%d is outside 1..%d", c.Concurrency, engine.MaxConcurrency)
	}
	if c.Duration < 0 || c.Duration > engine.MaxDuration || c.Duration == 0 && c.Count == 0 {
		bad("duration", "%v is outside (0s, %v] and no --count is set", c.Duration, engine.MaxDuration)
	}
	if c.Count < 0 {
		bad("count", "%d is negative", c.Count)
	}
	if c.Warmup < 0 || c.Warmup > engine.MaxDuration {
		bad("warmup", "%v is outside 0s..%v", c.Warmup, engine.MaxDuration)
	}
	if c.Window < 10*time.Millisecond || c.Window > time.Hour {
		bad("window", "%v is outside 10ms..1h", c.Window)
	}
	if c.Timeout <= 0 || c.Timeout > time.Hour {
		bad("timeout", "%v is outside (0s, 1h]", c.Timeout)
	}
	if len(errs) > 0 {
		// One line: the flags at fault, joined.
		var msgs []string
		for _, e := range errs {
			msgs = append(msgs, e.Error())
		}
		return nil, errors.New(strings.Join(msgs, "; "))
	}
	return o, nil
}
