// Package serve is the serving core both binaries share: the gRPC server with
// its keepalive, limits, interceptors, health and reflection; HTTP listeners;
// and the graceful shutdown sequence (NOT_SERVING, drain, bounded stop).
package serve

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/recovery"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/status"

	"github.com/knowingnode/knowingnode/internal/apidoc"
)

// Option adds to the gRPC server a binary builds.
type Option func(*options)

type options struct {
	unary      []grpc.UnaryServerInterceptor
	serverOpts []grpc.ServerOption
}

// WithUnaryInterceptors appends interceptors after the shared ones
// (panic recovery, which streams have too), in the order given.
func WithUnaryInterceptors(i ...grpc.UnaryServerInterceptor) Option {
	return func(o *options) { o.unary = append(o.unary, i...) }
}

// WithServerOptions adds gRPC server options, e.g. a stats handler.
// Interceptors chained in them run outside the shared ones and those of
// WithUnaryInterceptors, so that metrics see every call as its client does:
// injected faults and recovered panics included.
func WithServerOptions(so ...grpc.ServerOption) Option {
	return func(o *options) { o.serverOpts = append(o.serverOpts, so...) }
}

// streamWorkers is how many calls can run at once on reused goroutines; a
// worker waits on its call's request body too, so it is sized for
// concurrency, not cores. Calls beyond it get a goroutine of their own.
const streamWorkers = 128

// Server owns a binary's listeners and their shutdown.
type Server struct {
	cfg    Config
	log    *slog.Logger
	GRPC   *grpc.Server
	Health *health.Server

	grpcLis net.Listener
	codec   *replyCodec
	http    []*httpListener
	ready   atomic.Bool

	// stopping is cancelled when the stop phase begins, to end health
	// watches (see watchEnder).
	stopping     context.Context
	stopWatchers context.CancelFunc
}

type httpListener struct {
	name string
	lis  net.Listener
	srv  *http.Server
}

// New builds the gRPC server and binds its listener, so the address is known
// (and a port in use fails) before Run.
func New(cfg Config, log *slog.Logger, opts ...Option) (*Server, error) {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	lis, err := net.Listen("tcp", cfg.GRPCAddr)
	if err != nil {
		return nil, fmt.Errorf("listen gRPC on %s: %w", cfg.GRPCAddr, err)
	}
	// A panic in a handler, unary or stream, is logged with its method and
	// stack and answered INTERNAL; the process goes on serving.
	onPanic := recovery.WithRecoveryHandlerContext(func(ctx context.Context, p any) error {
		method, _ := grpc.Method(ctx)
		log.ErrorContext(ctx, "panic in handler", "method", method, "panic", p, "stack", string(debug.Stack()))
		return status.Error(codes.Internal, "internal error")
	})
	recover := recovery.UnaryServerInterceptor(onPanic)
	kp := keepalive.ServerParameters{MaxConnectionAgeGrace: cfg.MaxConnectionAgeGrace}
	if cfg.MaxConnectionAge > 0 {
		kp.MaxConnectionAge = cfg.MaxConnectionAge
	}
	codec := newReplyCodec()
	so := append(slices.Clone(o.serverOpts),
		grpc.ForceServerCodecV2(codec),
		grpc.ChainUnaryInterceptor(append([]grpc.UnaryServerInterceptor{recover}, o.unary...)...),
		grpc.ChainStreamInterceptor(recovery.StreamServerInterceptor(onPanic)),
		grpc.KeepaliveParams(kp),
		// Clients may ping idle connections, but not flood.
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 5 * time.Second, PermitWithoutStream: true}),
		grpc.MaxRecvMsgSize(cfg.MaxRecvBytes),
		grpc.MaxConcurrentStreams(uint32(cfg.MaxConcurrentStreams)),
		grpc.ConnectionTimeout(10*time.Second),
		// Long-lived workers whose stacks have already grown: a fresh
		// goroutine per call spent ~20% of the backend's CPU growing its
		// stack (runtime.newstack) under load.
		grpc.NumStreamWorkers(streamWorkers),
	)
	stopping, stopWatchers := context.WithCancel(context.Background())
	s := &Server{
		cfg:          cfg,
		log:          log,
		GRPC:         grpc.NewServer(so...),
		Health:       health.NewServer(),
		grpcLis:      lis,
		codec:        codec,
		stopping:     stopping,
		stopWatchers: stopWatchers,
	}
	healthpb.RegisterHealthServer(s.GRPC, watchEnder{Server: s.Health, stopping: stopping})
	// Reflection with the proto comments, so `grpcurl describe` documents.
	if !cfg.NoReflection {
		if err := apidoc.Register(s.GRPC); err != nil {
			lis.Close()
			return nil, err
		}
	}
	return s, nil
}

// ListenHTTP binds an HTTP listener serving h, with timeouts and header
// limits so slow or large clients cannot hold the server.
func (s *Server) ListenHTTP(name, addr string, h http.Handler) error {
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen %s HTTP on %s: %w", name, addr, err)
	}
	s.http = append(s.http, &httpListener{name: name, lis: lis, srv: &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      cmp.Or(s.cfg.HTTPWriteTimeout, DefaultHTTPWriteTimeout),
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}})
	return nil
}

// GRPCAddr is the bound gRPC address.
func (s *Server) GRPCAddr() net.Addr { return s.grpcLis.Addr() }

// HTTPAddr is the bound address of the named HTTP listener, nil if none.
func (s *Server) HTTPAddr(name string) net.Addr {
	for _, h := range s.http {
		if h.name == name {
			return h.lis.Addr()
		}
	}
	return nil
}

// Addrs lists what is served where, as "name=host:port".
func (s *Server) Addrs() []string {
	out := []string{"grpc=" + s.grpcLis.Addr().String()}
	for _, h := range s.http {
		out = append(out, h.name+"="+h.lis.Addr().String())
	}
	return out
}

// AdvertisedAddrs is Addrs as a client would dial them: a listener bound to
// every interface (":9090", "0.0.0.0", "[::]") is given host instead, the
// pod IP, since "[::]:9090" tells a reader of the identity nothing. With an
// empty host it is Addrs.
func (s *Server) AdvertisedAddrs(host string) []string {
	out := s.Addrs()
	if host == "" {
		return out
	}
	for i, a := range out {
		name, hp, _ := strings.Cut(a, "=")
		h, port, err := net.SplitHostPort(hp)
		if ip := net.ParseIP(h); err == nil && ip != nil && ip.IsUnspecified() {
			out[i] = name + "=" + net.JoinHostPort(host, port)
		}
	}
	return out
}

// Stopping returns a context cancelled when the stop phase of a shutdown
// begins (after the drain delay): streams that never end by themselves
// (watches) end on it, so that the graceful stop can finish.
func (s *Server) Stopping() context.Context { return s.stopping }

// Ready reports whether the server is serving and not shutting down; for
// HTTP readiness probes.
func (s *Server) Ready() bool { return s.ready.Load() }

// Run serves until ctx ends, then shuts down: every health status turns
// NOT_SERVING at once, serving goes on for the drain delay so that endpoints
// and clients stop sending, then in-flight calls get the shutdown timeout to
// finish. It returns nil after a clean shutdown.
func (s *Server) Run(ctx context.Context) error {
	errc := make(chan error, 1+len(s.http))
	go func() { errc <- s.GRPC.Serve(s.grpcLis) }()
	for _, h := range s.http {
		go func() {
			if err := h.srv.Serve(h.lis); !errors.Is(err, http.ErrServerClosed) {
				errc <- fmt.Errorf("%s HTTP: %w", h.name, err)
			}
		}()
	}
	s.Health.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	// Each service by name too (grpc-health-probe -service=...); Shutdown
	// turns them all NOT_SERVING with "".
	for name := range s.GRPC.GetServiceInfo() {
		s.Health.SetServingStatus(name, healthpb.HealthCheckResponse_SERVING)
	}
	s.ready.Store(true)
	s.log.Info("serving", "addrs", s.Addrs())

	var serveErr error
	select {
	case <-ctx.Done():
	case serveErr = <-errc:
		s.log.Error("serving failed; shutting down", "err", serveErr)
	}
	s.shutdown()
	return serveErr
}

func (s *Server) shutdown() {
	s.ready.Store(false)
	s.Health.Shutdown() // NOT_SERVING for every service, now and after
	s.log.Info("shutdown: NOT_SERVING, draining", "drain_delay", s.cfg.DrainDelay)
	time.Sleep(s.cfg.DrainDelay)

	s.log.Info("shutdown: stopping", "timeout", s.cfg.ShutdownTimeout)
	s.stopWatchers()
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownTimeout)
	defer cancel()
	var wg sync.WaitGroup
	wg.Go(func() {
		done := make(chan struct{})
		go func() { s.GRPC.GracefulStop(); close(done) }()
		select {
		case <-done:
		case <-ctx.Done():
			s.log.Warn("shutdown: gRPC calls still running at the timeout; cutting them")
			s.GRPC.Stop()
		}
	})
	for _, h := range s.http {
		wg.Go(func() {
			if err := h.srv.Shutdown(ctx); err != nil {
				s.log.Warn("shutdown: HTTP requests still running at the timeout; cutting them", "listener", h.name)
				h.srv.Close()
			}
		})
	}
	wg.Wait()
	s.log.Info("shutdown: done")
}

// watchEnder is the health service, except that Watch streams end when the
// stop phase begins. A watch never ends by itself, and grpc-go clients with
// client-side health checking keep one open per connection, so without this
// every GracefulStop would wait for the full shutdown timeout and then cut
// the calls it was meant to let finish. Watchers have seen NOT_SERVING for
// the whole drain delay by then.
type watchEnder struct {
	*health.Server
	stopping context.Context
}

func (w watchEnder) Watch(req *healthpb.HealthCheckRequest, stream healthpb.Health_WatchServer) error {
	ctx, cancel := context.WithCancel(stream.Context())
	defer cancel()
	defer context.AfterFunc(w.stopping, cancel)()
	err := w.Server.Watch(req, watchStream{Health_WatchServer: stream, ctx: ctx})
	if w.stopping.Err() != nil {
		return status.Error(codes.Unavailable, "server shutting down")
	}
	return err
}

type watchStream struct {
	healthpb.Health_WatchServer
	ctx context.Context
}

func (w watchStream) Context() context.Context { return w.ctx }

// SignalContext returns a context cancelled on SIGTERM or SIGINT.
func SignalContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
}
