// Package tier is how a knowingnode binary starts and stops, written once for
// both: its shared flags, logger, Downward API identity, telemetry, gRPC
// server with IdentityService, admin port, and the run until SIGTERM.
package tier

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	knowingnodev1 "github.com/knowingnode/knowingnode/gen/knowingnode/v1"
	"github.com/knowingnode/knowingnode/internal/config"
	"github.com/knowingnode/knowingnode/internal/identity"
	"github.com/knowingnode/knowingnode/internal/logging"
	"github.com/knowingnode/knowingnode/internal/serve"
	"github.com/knowingnode/knowingnode/internal/telemetry"
)

// Config is the configuration both tiers share.
type Config struct {
	Serve       serve.Config
	AdminAddr   string
	Pprof       bool
	DownwardDir string
	Annotations identity.AnnotationFilter
}

// Register defines the shared flags; adminAddr is the tier's default admin
// address (empty: off).
func (c *Config) Register(s *config.Set, adminAddr string) {
	c.Serve.Register(s)
	s.String(&c.AdminAddr, "admin-addr", "ADMIN_ADDR", adminAddr, "admin HTTP listen address (/metrics, /healthz, pprof); empty disables")
	s.Bool(&c.Pprof, "pprof", "PPROF", false, "serve net/http/pprof under /debug/pprof/ on the admin port")
	s.String(&c.DownwardDir, "downward-dir", "DOWNWARD_DIR", "/etc/downward", "directory of the Downward API volume (files labels, annotations); empty skips it")
	c.Annotations.Register(s)
}

// Validate checks the shared values.
func (c *Config) Validate() error {
	return errors.Join(c.Serve.Validate(), c.Annotations.Validate(),
		config.CheckListenAddr("admin-addr", c.AdminAddr, true),
		config.Check(!c.Pprof || c.AdminAddr != "", "pprof", "pprof is served on the admin port, which is off: give --admin-addr too"))
}

// Tier is a started binary: what it knows of itself and what it serves with.
type Tier struct {
	Log       *slog.Logger
	Identity  *knowingnodev1.Identity // complete, and then frozen, when Run starts
	Telemetry *telemetry.Telemetry
	Server    *serve.Server
	// IdentityServer serves Identity; Run registers it on Server, and the
	// frontend's gateway calls it in-process.
	IdentityServer *identity.Server

	stages   []stage
	stopOnce sync.Once
}

// stage is one step of the teardown after the servers stopped.
type stage struct {
	name    string
	timeout time.Duration
	run     func(ctx context.Context) error
}

// AtStop adds a teardown stage. Stages run in the order added once the
// servers have stopped, each given timeout (it must honour its ctx), then
// telemetry is flushed.
func (t *Tier) AtStop(name string, timeout time.Duration, run func(ctx context.Context) error) {
	t.stages = append(t.stages, stage{name, timeout, run})
}

// New builds the logger, loads the identity, sets up telemetry, and binds
// the gRPC and admin listeners. opts add to the gRPC server.
func New(ctx context.Context, cfg Config, t knowingnodev1.Tier, logw io.Writer, opts ...serve.Option) (*Tier, error) {
	start := time.Now()
	log, err := logging.New(logw, cfg.Serve.LogFormat, cfg.Serve.LogLevel)
	if err != nil {
		return nil, err
	}
	id := identity.Load(identity.Options{Tier: t, DownwardDir: cfg.DownwardDir, StartTime: start, Logger: log, Annotations: &cfg.Annotations})
	tel, err := telemetry.New(ctx, telemetry.Options{Service: serviceName(t), Identity: id, Getenv: os.Getenv})
	if err != nil {
		return nil, err
	}
	srv, err := serve.New(cfg.Serve, log, append([]serve.Option{serve.WithServerOptions(tel.ServerOptions()...)}, opts...)...)
	if err != nil {
		return nil, err
	}
	if cfg.AdminAddr != "" {
		if err := srv.ListenHTTP("admin", cfg.AdminAddr, tel.AdminHandler(srv.Ready, cfg.Pprof)); err != nil {
			return nil, err
		}
	}
	return &Tier{Log: log, Identity: id, Telemetry: tel, Server: srv, IdentityServer: identity.NewServer(id)}, nil
}

// Run completes the identity with the addresses served, registers
// IdentityService (its reply encoded once), tunes the garbage collector, and
// serves until ctx ends. Every other service and listener must be registered
// before.
func (t *Tier) Run(ctx context.Context) error {
	defer t.Stop()
	t.Identity.ServingAddresses = t.Server.AdvertisedAddrs(t.Identity.PodIp)
	knowingnodev1.RegisterIdentityServiceServer(t.Server.GRPC, t.IdentityServer)
	if err := t.Server.CacheReply(t.IdentityServer.Response()); err != nil {
		return fmt.Errorf("encode identity: %w", err)
	}
	serve.TuneGC(t.Log, os.Getenv, t.Identity.MemoryLimitBytes)
	t.Telemetry.InitializeServerMetrics(t.Server.GRPC)
	return t.Server.Run(ctx)
}

// Stop runs the teardown stages in order, each bounded by its timeout, and
// flushes telemetry (bounded too). Run calls it; call it too (deferred) when
// returning before Run. Only the first call does anything.
func (t *Tier) Stop() {
	t.stopOnce.Do(func() {
		for _, st := range t.stages {
			start := time.Now()
			if err := runBounded(st.timeout, st.run); err != nil {
				t.Log.Warn("shutdown: stage did not finish cleanly", "stage", st.name, "timeout", st.timeout, "err", err)
				continue
			}
			t.Log.Debug("shutdown: stage done", "stage", st.name, "took", time.Since(start))
		}
		if err := t.Telemetry.Shutdown(context.Background()); err != nil {
			t.Log.Warn("shutdown: telemetry", "err", err)
		}
	})
}

// runBounded runs f with a ctx of the given timeout and returns when f does
// or, should f ignore its ctx, at the timeout.
func runBounded(timeout time.Duration, f func(ctx context.Context) error) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	errc := make(chan error, 1)
	go func() { errc <- f(ctx) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
		return fmt.Errorf("still running after %v", timeout)
	}
}

// Main runs run until SIGTERM or SIGINT and exits: 0 after a clean
// shutdown, 1 with one line on stderr otherwise. A second signal during the
// shutdown exits at once, with status 1: whoever sends it does not want to
// wait for the drain.
func Main(program string, run func(ctx context.Context) error) {
	// One registration for both signals, so none can fall between two.
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		select {
		case <-sigs:
			cancel()
		case <-done:
			return
		}
		select {
		case sig := <-sigs:
			fmt.Fprintf(os.Stderr, "%s: second signal (%v) during shutdown: exiting now\n", program, sig)
			os.Exit(1)
		case <-done:
		}
	}()
	err := run(ctx)
	close(done)
	<-watched
	signal.Stop(sigs)
	cancel()
	if err != nil && !errors.Is(err, context.Canceled) {
		fmt.Fprintf(os.Stderr, "%s: %v\n", program, err)
		os.Exit(1)
	}
}

func serviceName(t knowingnodev1.Tier) string {
	switch t {
	case knowingnodev1.Tier_TIER_BACKEND:
		return "knowingnode-backend"
	case knowingnodev1.Tier_TIER_FRONTEND:
		return "knowingnode-frontend"
	}
	return "knowingnode"
}
