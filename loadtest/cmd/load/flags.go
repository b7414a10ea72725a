package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	knowingnodev1 "github.com/knowingnode/knowingnode/gen/knowingnode/v1"
	"github.com/knowingnode/knowingnode/internal/discovery"
	"github.com/knowingnode/knowingnode/internal/load/engine"
)

// options is the parsed command line.
type options struct {
	target      string
	call        string // identity, fanout or rest
	connections int
	balancing   string // the policy: one of balancing.Policies
	policy      policyOptions
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
	o.policy.register(fs, &o.balancing)
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
			return nil, err
		}
		// The flag package names the flag and the value; add what it takes.
		if m := parseErrFlag.FindStringSubmatch(err.Error()); m != nil && accepted[m[1]] != "" {
			return nil, fmt.Errorf("%w; accepted: %s", err, accepted[m[1]])
		}
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q: every option is a flag", fs.Arg(0))
	}
	o.fanout.Count = int32(min(max(count, 0), maxFanoutCount))
	if err := o.check(mode, count); err != nil {
		return nil, err
	}
	return o, nil
}

// targetName is the form of a frontend's target names (--target name=spec).
var targetName = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)

// parseErrFlag finds the flag in the flag package's error.
var parseErrFlag = regexp.MustCompile(`for flag -(\S+):`)

const maxFanoutCount = 10000

// accepted is what each checked flag takes, as its error names it.
var accepted = map[string]string{
	"target":       "host:port, dns://[server]/name:port, static:///host:port,... or kubernetes:///service.namespace:port (srv:// and statefulset:// with --refresh); for --call rest an http(s) URL",
	"call":         "identity, fanout or rest",
	"rate":         fmt.Sprintf("0..%g calls/s (0: closed loop)", float64(engine.MaxRate)),
	"concurrency":  fmt.Sprintf("1..%d", engine.MaxConcurrency),
	"duration":     fmt.Sprintf("(0s, %v], or 0s with --count", engine.MaxDuration),
	"count":        "0 (no limit) or more",
	"warmup":       fmt.Sprintf("0s..%v", engine.MaxDuration),
	"window":       "10ms..1h",
	"timeout":      "(0s, 1h]",
	"connections":  fmt.Sprintf("1..%d", maxConnections),
	"refresh":      "0 (off) or 100ms..1h, with a dns, srv or statefulset gRPC target",
	"balancing":    "pick_first, round_robin, weighted_round_robin, least_request or ring_hash (flag --policy, old name --balancing)",
	"fanout-mode":  "each or balanced",
	"fanout-count": fmt.Sprintf("0..%d", maxFanoutCount),
	"path":         "a path starting with /",
	"json":         "a file path, or - for stdout",
	"plot":         "a PNG file path, not the --json file",
}

// check validates every flag, so that nothing starts on a value that cannot
// work; the error is one line naming each bad flag, its value and what it
// accepts.
func (o *options) check(mode string, count int) error {
	var errs []string
	bad := func(name string, value any) {
		errs = append(errs, fmt.Sprintf("invalid value %q for flag --%s: want %s", fmt.Sprint(value), name, accepted[name]))
	}
	badWhy := func(name string, value any, why string) {
		errs = append(errs, fmt.Sprintf("invalid value %q for flag --%s: %s; want %s", fmt.Sprint(value), name, why, accepted[name]))
	}
	switch o.call {
	case "identity", "fanout", "rest":
	default:
		bad("call", o.call)
	}
	if o.target == "" {
		badWhy("target", o.target, "a target is required")
	} else if why := o.checkTarget(); why != "" {
		badWhy("target", o.target, why)
	}
	badf := func(flag, format string, args ...any) {
		if flag == "policy" { // --policy, or its old name --balancing, both fill o.balancing
			bad("balancing", o.balancing)
			return
		}
		errs = append(errs, fmt.Sprintf("invalid value for flag --%s: %s", flag, fmt.Sprintf(format, args...)))
	}
	o.policy.validate(o.balancing, badf)
	switch strings.ToLower(mode) {
	case "each":
		o.fanout.Mode = knowingnodev1.FanOutMode_FAN_OUT_MODE_EACH
	case "balanced":
		o.fanout.Mode = knowingnodev1.FanOutMode_FAN_OUT_MODE_BALANCED
	default:
		bad("fanout-mode", mode)
	}
	if t := o.fanout.Target; t != "" && !targetName.MatchString(t) {
		bad("fanout-target", t)
	}
	if count < 0 || count > maxFanoutCount {
		bad("fanout-count", count)
	}
	if o.connections < 1 || o.connections > maxConnections {
		bad("connections", o.connections)
	}
	if o.refresh < 0 || o.refresh > time.Hour || o.refresh > 0 && o.refresh < 100*time.Millisecond {
		bad("refresh", o.refresh)
	}
	o.obs.validate(badf)
	if !strings.HasPrefix(o.path, "/") {
		bad("path", o.path)
	}
	c := o.engine
	// Written so that NaN fails: every comparison with NaN is false.
	if !(c.Rate >= 0 && c.Rate <= engine.MaxRate) {
		bad("rate", c.Rate)
	}
	if c.Concurrency < 1 || c.Concurrency > engine.MaxConcurrency {
		bad("concurrency", c.Concurrency)
	}
	if c.Duration < 0 || c.Duration > engine.MaxDuration || c.Duration == 0 && c.Count == 0 {
		bad("duration", c.Duration)
	}
	if c.Count < 0 {
		bad("count", c.Count)
	}
	if c.Warmup < 0 || c.Warmup > engine.MaxDuration {
		bad("warmup", c.Warmup)
	}
	if c.Window < 10*time.Millisecond || c.Window > time.Hour {
		bad("window", c.Window)
	}
	if c.Timeout <= 0 || c.Timeout > time.Hour {
		bad("timeout", c.Timeout)
	}
	if o.plotFile != "" && o.plotFile == o.jsonFile {
		badWhy("plot", o.plotFile, "the same file as --json")
	}
	if len(errs) == 0 {
		// Whatever the flags above missed, the engine refuses too.
		if err := o.engine.Validate(); err != nil {
			errs = append(errs, strings.ReplaceAll(err.Error(), "\n", "; "))
		}
	}
	if len(errs) > 0 {
		// One line: the flags at fault, joined.
		return errors.New(strings.Join(errs, "; "))
	}
	return nil
}

// checkTarget says why the target can never work with the other flags, or
// "" when it may. gRPC targets take the frontend's target syntax, so a
// missing port or an empty list is refused here rather than failing every
// call.
func (o *options) checkTarget() string {
	if o.call == "rest" {
		if o.refresh > 0 {
			return "--refresh does not apply to --call rest"
		}
		base := o.target
		if !strings.Contains(base, "://") {
			base = "http://" + base
		}
		u, err := url.Parse(strings.TrimSuffix(base, "/") + o.path)
		switch {
		case err != nil:
			return fmt.Sprintf("not a URL with --path %q: %v", o.path, err)
		case u.Scheme != "http" && u.Scheme != "https":
			return fmt.Sprintf("scheme %q is not http or https", u.Scheme)
		case u.Hostname() == "":
			return "the URL names no host"
		}
		if p := u.Port(); p != "" {
			if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
				return fmt.Sprintf("port %q is not 1..65535", p)
			}
		}
		return ""
	}
	scheme, _, _ := strings.Cut(o.target, "://")
	switch scheme {
	case "http", "https":
		return "a URL is no gRPC target; for the REST gateway use --call rest"
	case "passthrough", "unix", "unix-abstract":
		if o.refresh > 0 {
			return fmt.Sprintf("--refresh needs a dns, srv or statefulset target, not %s", scheme)
		}
		return "" // gRPC's own schemes: it checks them
	}
	spec, err := discovery.ParseSpec(o.target)
	if err != nil {
		return err.Error()
	}
	switch spec.QType {
	case discovery.A:
	case discovery.Static:
		if o.refresh > 0 {
			return "--refresh needs a dns, srv or statefulset target, not static"
		}
	case discovery.SRV, discovery.StatefulSet:
		if o.refresh == 0 {
			return fmt.Sprintf("gRPC cannot resolve a %s target: add --refresh", spec.QType)
		}
	case discovery.Kubernetes: // watched through the API (the report's lifecycle)
	default:
		return fmt.Sprintf("bin/load does not resolve %s targets", spec.QType)
	}
	return ""
}
