// Command frontend discovers the backends through cluster DNS, fans calls out
// to every one of them, and serves the aggregate over gRPC, a REST gateway and
// a browser page.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"

	"github.com/knowingnode/knowingnode/frontend/fanout"
	"github.com/knowingnode/knowingnode/frontend/gateway"
	"github.com/knowingnode/knowingnode/frontend/load"
	"github.com/knowingnode/knowingnode/frontend/web"
	knowingnodev1 "github.com/knowingnode/knowingnode/gen/knowingnode/v1"
	"github.com/knowingnode/knowingnode/internal/config"
	"github.com/knowingnode/knowingnode/internal/discovery"
	"github.com/knowingnode/knowingnode/internal/tier"
)

type flags struct {
	tier            tier.Config
	httpAddr        string
	targets         targetsFlag
	defaultTarget   string
	refreshInterval time.Duration
	allowCrossSite  bool
	fanout          fanout.Options
	load            load.Options
	kubeconfig      string

	matrix matrixFlags
}

// targetsFlag collects name=spec targets; the environment variable holds
// several, separated by spaces.
type targetsFlag struct{ specs []discovery.Spec }

func (t *targetsFlag) String() string {
	var s []string
	for _, sp := range t.specs {
		s = append(s, sp.Name+"="+sp.Raw)
	}
	return strings.Join(s, " ")
}

func (t *targetsFlag) names() string {
	var s []string
	for _, sp := range t.specs {
		s = append(s, sp.Name)
	}
	return strings.Join(s, ", ")
}

func (t *targetsFlag) Set(v string) error {
	for item := range strings.FieldsSeq(v) {
		sp, err := discovery.ParseTarget(item)
		if err != nil {
			return err
		}
		for _, have := range t.specs {
			if have.Name == sp.Name {
				return fmt.Errorf("target %q given twice", sp.Name)
			}
		}
		t.specs = append(t.specs, sp)
	}
	return nil
}

func parseFlags(args []string) *flags {
	f := &flags{}
	s := config.New("frontend")
	// The admin port is off by default: /metrics is on the HTTP port too.
	f.tier.Register(s, "")
	// A gRPC stream on a connection that reaches --max-connection-age gets
	// only the grace to finish: the frontend's default covers the default
	// --load-max-duration (1m), so that a load runs to its summary.
	f.tier.Serve.MaxConnectionAgeGrace = frontendConnectionAgeGrace
	s.FlagSet().Lookup("max-connection-age-grace").DefValue = frontendConnectionAgeGrace.String()
	s.String(&f.httpAddr, "http-addr", "HTTP_ADDR", ":8080", "HTTP listen address: REST gateway, browser page, probes, /metrics")
	s.Var(&f.targets, "target", "TARGETS", "a backend target name=spec, repeatable (env: space-separated); spec is dns://[server]/name:port, srv://[server]/_grpc._tcp.svc.ns.svc.cluster.local, statefulset://[server]/sts.svc.ns.svc.cluster.local:port[?replicas=N], static:///host:port,... or kubernetes:///service.namespace:port")
	s.String(&f.defaultTarget, "default-target", "DEFAULT_TARGET", "", "target used when a request names none (default: the first)")
	s.Duration(&f.refreshInterval, "refresh-interval", "REFRESH_INTERVAL", 5*time.Second, "how often discovery re-resolves each target")
	f.fanout.Register(s)
	s.Bool(&f.allowCrossSite, "allow-cross-site", "ALLOW_CROSS_SITE", false, "let browsers on other sites (Sec-Fetch-Site: cross-site, or a foreign Origin) call the REST API (/v1/..., /hostz) and send unsafe methods such as POST /v1/load")
	f.load.Register(s)
	f.matrix.register(s)
	s.String(&f.kubeconfig, "kubeconfig", "KUBECONFIG", "", "kubeconfig for kubernetes:/// targets when running outside a cluster (default: the pod's service account)")
	// Method values on pointers: each sees the values parsing fills in.
	s.ParseOrExit(args, f.tier.Validate, f.fanout.Validate, f.load.Validate, f.matrix.validate, func() error {
		return errors.Join(
			config.Check(len(f.targets.specs) > 0, "target", "at least one target is required, e.g. --target backend=dns:///backend:9090"),
			config.Check(f.defaultTarget == "" || slices.ContainsFunc(f.targets.specs, func(s discovery.Spec) bool { return s.Name == f.defaultTarget }),
				"default-target", "%q is not a configured target (configured: %s)", f.defaultTarget, f.targets.names()),
			config.Check(f.refreshInterval >= 100*time.Millisecond && f.refreshInterval <= time.Hour, "refresh-interval", "%v is outside 100ms..1h", f.refreshInterval),
			config.CheckListenAddr("http-addr", f.httpAddr, false),
			config.Check(f.tier.Serve.MaxConnectionAge == 0 || f.load.MaxDuration <= f.tier.Serve.MaxConnectionAgeGrace, "load-max-duration",
				"%v is longer than --max-connection-age-grace (%v): a gRPC load could be cut when its connection ages; raise the grace, or set --max-connection-age 0",
				f.load.MaxDuration, f.tier.Serve.MaxConnectionAgeGrace),
			config.Check(f.kubeconfig == "" || fileExists(f.kubeconfig), "kubeconfig", "%q is not a readable file", f.kubeconfig),
		)
	})
	return f
}

// frontendConnectionAgeGrace is the frontend's default
// --max-connection-age-grace: the default --load-max-duration and a margin.
const frontendConnectionAgeGrace = 70 * time.Second

func main() {
	f := parseFlags(os.Args[1:])
	tier.Main("frontend", func(ctx context.Context) error { return run(ctx, f, os.Stderr) })
}

func run(ctx context.Context, f *flags, logw io.Writer) error {
	t, err := tier.New(ctx, f.tier, knowingnodev1.Tier_TIER_FRONTEND, logw)
	if err != nil {
		return err
	}
	log, tel, srv := t.Log, t.Telemetry, t.Server
	metrics, err := fanout.NewMetrics(tel.Registry)
	if err != nil {
		return err
	}
	fo := f.fanout
	fo.Logger, fo.Metrics, fo.Stopping = log, metrics, srv.Stopping()
	if tel.Tracing {
		fo.Tracer = tel.Tracer("github.com/knowingnode/knowingnode/frontend/fanout")
	}
	// Teardown, once the servers have stopped (every stage bounded, and all
	// of it within terminationGracePeriodSeconds after the drain and the
	// shutdown timeout): fan-outs still running end, then discovery stops
	// and is joined, so no refresh dials on a closed pool, then the pools.
	defer t.Stop() // when returning before t.Run
	fan := fanout.New(t.Identity, fo)
	t.AtStop("fan-outs", time.Second, fan.Close)
	f.load.Logger, f.load.CallTimeout, f.load.Stopping = log, f.fanout.BackendTimeout, srv.Stopping()
	if f.load.Metrics, err = load.NewMetrics(tel.Registry); err != nil {
		return err
	}
	loads := load.New(f.load)
	dialOpts := append([]grpc.DialOption{
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(1 << 20)),
		// gRPC's defaults (20 s connect timeout, backoff towards 120 s) left
		// a frontend unable to reach a ClusterIP for 15-30 s when its first
		// dial came before kube-proxy or the backends were ready. Backends
		// are on the cluster network: reconnect soon and often.
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: 3 * time.Second},
			MinConnectTimeout: 2 * time.Second,
		}),
	}, tel.DialOptions()...)
	var (
		targets []*discovery.Target
		pools   []*fanout.Pool
		disc    sync.WaitGroup
	)
	// Discovery outlives requests but not the process: it stops after the
	// servers and the fan-outs.
	discCtx, stopDiscovery := context.WithCancel(context.Background())
	sources := &discovery.Sources{Kubeconfig: f.kubeconfig, Logger: log}
	t.AtStop("discovery", 500*time.Millisecond, func(ctx context.Context) error {
		stopDiscovery()
		err := waitGroup(ctx, &disc)
		sources.Close()
		return err
	})
	t.AtStop("pools", 500*time.Millisecond, func(context.Context) error {
		for _, p := range pools {
			p.Close()
		}
		return nil
	})
	for _, spec := range f.targets.specs {
		src, err := sources.For(spec)
		if err != nil {
			return err
		}
		pool, err := fanout.NewPool(spec.Name, f.fanout.BackendTimeout+time.Second, log, dialOpts...)
		if err != nil {
			return err
		}
		pools = append(pools, pool)
		target := discovery.NewTarget(spec, src, discovery.TargetOptions{
			Interval: f.refreshInterval,
			Logger:   log,
			OnUpdate: pool.Update,
		})
		loads.Add(spec.Name, pool)
		loads.Follow(spec.Name, target, f.refreshInterval)
		if err := fan.Add(target, pool); err != nil {
			return err
		}
		targets = append(targets, target)
		// A first answer before serving, so the first request sees backends;
		// a failure is reported in replies and retried on schedule.
		target.Refresh(ctx)
		disc.Go(func() { target.Run(discCtx) })
	}
	if f.defaultTarget != "" {
		if err := fan.SetDefault(f.defaultTarget); err != nil {
			return err
		}
		loads.SetDefault(f.defaultTarget)
	}
	if err := tel.Registry.Register(discovery.NewCollector(targets...)); err != nil {
		return fmt.Errorf("register discovery metrics: %w", err)
	}
	mx, err := startMatrix(ctx, &f.matrix, matrixDeps{t: t, log: log, reg: tel.Registry, fan: fan, sources: sources,
		dialOpts: dialOpts, interval: f.refreshInterval, stream: !f.fanout.NoStreaming, discCtx: discCtx, disc: &disc})
	if err != nil {
		return err
	}

	gw := gateway.Options{
		Identity:   t.IdentityServer,
		FanOut:     fan,
		Load:       loads.Client(),
		LoadReport: loads.Report,
		Ready:      srv.Ready,
		Page:       web.Handler(),
		Metrics:    tel.MetricsHandler(),
		Registerer: tel.Registry,
		Fixed:      []proto.Message{t.IdentityServer.Response()},
		Logger:     log,

		AllowCrossSite: f.allowCrossSite,
		Matrix:         mx,
	}
	if tel.Tracing {
		gw.TracerProvider, gw.Propagator = tel.TracerProvider(), tel.Propagator()
	}
	h, err := gateway.New(ctx, gw)
	if err != nil {
		return err
	}
	h = retryAfter(h)
	if err := srv.ListenHTTP("http", f.httpAddr, h); err != nil {
		return err
	}
	knowingnodev1.RegisterFanOutServiceServer(srv.GRPC, fan)
	srv.EncodeWith(fan.EncodeReply) // backend identities spliced in as they came
	knowingnodev1.RegisterLoadServiceServer(srv.GRPC, loads)
	knowingnodev1.RegisterMatrixServiceServer(srv.GRPC, mx)
	return t.Run(ctx)
}

// waitGroup waits for wg, or until ctx ends.
func waitGroup(ctx context.Context, wg *sync.WaitGroup) error {
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// fileExists reports whether path names a file that can be opened.
func fileExists(path string) bool {
	fh, err := os.Open(path)
	if err != nil {
		return false
	}
	st, err := fh.Stat()
	fh.Close()
	return err == nil && st.Mode().IsRegular()
}
