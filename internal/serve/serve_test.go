package serve

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"

	knowingnodev1 "github.com/knowingnode/knowingnode/gen/knowingnode/v1"
	"github.com/knowingnode/knowingnode/internal/config"
)

// logWatch is a slog handler that lets a test wait for a message, so that it
// can order its steps after the shutdown sequence's without sleeping.
type logWatch struct {
	mu   sync.Mutex
	msgs []string
	cond chan struct{} // closed and replaced on every record
}

func newLogWatch() *logWatch { return &logWatch{cond: make(chan struct{})} }

func (l *logWatch) Enabled(context.Context, slog.Level) bool { return true }
func (l *logWatch) WithAttrs([]slog.Attr) slog.Handler       { return l }
func (l *logWatch) WithGroup(string) slog.Handler            { return l }
func (l *logWatch) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.msgs = append(l.msgs, r.Message)
	close(l.cond)
	l.cond = make(chan struct{})
	return nil
}

// seen reports whether a message starting with prefix was logged.
func (l *logWatch) seen(prefix string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.ContainsFunc(l.msgs, func(m string) bool { return strings.HasPrefix(m, prefix) })
}

// wait blocks until a message starting with prefix is logged.
func (l *logWatch) wait(t *testing.T, prefix string) {
	t.Helper()
	timeout := time.After(30 * time.Second) // a hang guard, not a timing goal
	for {
		l.mu.Lock()
		found := slices.ContainsFunc(l.msgs, func(m string) bool { return strings.HasPrefix(m, prefix) })
		c := l.cond
		l.mu.Unlock()
		if found {
			return
		}
		select {
		case <-c:
		case <-timeout:
			t.Fatalf("no log %q; got %q", prefix, l.msgs)
		}
	}
}

// blockingIdentity answers GetIdentity once release is closed, or fails when
// the call's context ends; started receives one value per call begun.
type blockingIdentity struct {
	knowingnodev1.UnimplementedIdentityServiceServer
	started chan struct{}
	release chan struct{}
	once    sync.Once
	ended   chan error // the handler's outcome
}

func newBlockingIdentity() *blockingIdentity {
	return &blockingIdentity{started: make(chan struct{}, 16), release: make(chan struct{}), ended: make(chan error, 16)}
}

// Release lets every call, current and future, answer.
func (b *blockingIdentity) Release() { b.once.Do(func() { close(b.release) }) }

func (b *blockingIdentity) GetIdentity(ctx context.Context, _ *knowingnodev1.GetIdentityRequest) (*knowingnodev1.GetIdentityResponse, error) {
	b.started <- struct{}{}
	select {
	case <-b.release:
		b.ended <- nil
		return &knowingnodev1.GetIdentityResponse{Identity: &knowingnodev1.Identity{PodName: "p"}}, nil
	case <-ctx.Done():
		b.ended <- ctx.Err()
		return nil, status.FromContextError(ctx.Err()).Err()
	}
}

func testConfig() Config {
	return Config{
		GRPCAddr:              "127.0.0.1:0",
		DrainDelay:            0,
		ShutdownTimeout:       30 * time.Second,
		MaxConnectionAge:      0,
		MaxConnectionAgeGrace: time.Second,
		MaxRecvBytes:          4096,
		MaxConcurrentStreams:  100,
		HTTPWriteTimeout:      DefaultHTTPWriteTimeout,
	}
}

// harness runs a Server with a blockingIdentity until the test stops it.
type harness struct {
	srv    *Server
	logs   *logWatch
	id     *blockingIdentity
	conn   *grpc.ClientConn
	cancel context.CancelFunc
	runErr chan error
}

func start(t *testing.T, cfg Config, opts ...Option) *harness {
	t.Helper()
	h := &harness{logs: newLogWatch(), id: newBlockingIdentity(), runErr: make(chan error, 1)}
	srv, err := New(cfg, slog.New(h.logs), opts...)
	if err != nil {
		t.Fatal(err)
	}
	h.srv = srv
	knowingnodev1.RegisterIdentityServiceServer(srv.GRPC, h.id)
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	go func() { h.runErr <- srv.Run(ctx) }()
	h.logs.wait(t, "serving")
	conn, err := grpc.NewClient(srv.GRPCAddr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	h.conn = conn
	t.Cleanup(func() {
		cancel()
		h.id.Release()
		conn.Close()
		<-h.runErr // Run must return, whatever the test did
	})
	return h
}

func (h *harness) check(ctx context.Context) (healthpb.HealthCheckResponse_ServingStatus, error) {
	resp, err := healthpb.NewHealthClient(h.conn).Check(ctx, &healthpb.HealthCheckRequest{})
	return resp.GetStatus(), err
}

// call runs GetIdentity in the background; its error arrives on the channel.
func (h *harness) call(ctx context.Context) chan error {
	errc := make(chan error, 1)
	go func() {
		_, err := knowingnodev1.NewIdentityServiceClient(h.conn).GetIdentity(ctx, &knowingnodev1.GetIdentityRequest{})
		errc <- err
	}()
	return errc
}

func TestHealthNotServingFromShutdownStart(t *testing.T) {
	cfg := testConfig()
	// Long enough that the steps below run inside it; the test checks that
	// they did rather than trusting the figure.
	cfg.DrainDelay = 2 * time.Second
	h := start(t, cfg)
	ctx := t.Context()

	if st, err := h.check(ctx); err != nil || st != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("while up: Check = %v, %v; want SERVING", st, err)
	}
	if !h.srv.Ready() {
		t.Fatal("while up: Ready() = false")
	}

	// A named service's status, set while up, turns too: Shutdown covers
	// every entry.
	const svc = "knowingnode.v1.IdentityService"
	h.srv.Health.SetServingStatus(svc, healthpb.HealthCheckResponse_SERVING)

	h.cancel()
	h.logs.wait(t, "shutdown: NOT_SERVING")
	st, err := h.check(ctx)
	if err != nil || st != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Errorf("during drain: Check = %v, %v; want NOT_SERVING", st, err)
	}
	if h.srv.Ready() {
		t.Error("during drain: Ready() = true")
	}
	resp, err := healthpb.NewHealthClient(h.conn).Check(ctx, &healthpb.HealthCheckRequest{Service: svc})
	if err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Errorf("during drain: Check(IdentityService) = %v, %v; want NOT_SERVING", resp.GetStatus(), err)
	}

	// The server still answers while draining: clients that have not yet
	// seen the endpoint go must not fail.
	h.id.Release()
	if err := <-h.call(ctx); err != nil {
		t.Errorf("during drain: GetIdentity = %v; want OK", err)
	}
	if h.logs.seen("shutdown: stopping") {
		t.Fatal("inconclusive: the drain delay ended before the checks above ran")
	}
	if err := <-h.runErr; err != nil {
		t.Errorf("Run = %v", err)
	}
	h.runErr <- nil // for Cleanup
}

func TestHealthWatchSeesShutdown(t *testing.T) {
	cfg := testConfig()
	cfg.ShutdownTimeout = 5 * time.Second // a stuck watcher shows as the timeout warning
	h := start(t, cfg)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	w, err := healthpb.NewHealthClient(h.conn).Watch(ctx, &healthpb.HealthCheckRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if m, err := w.Recv(); err != nil || m.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("Watch first = %v, %v; want SERVING", m.GetStatus(), err)
	}
	h.cancel()
	if m, err := w.Recv(); err != nil || m.GetStatus() != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Fatalf("Watch after shutdown = %v, %v; want NOT_SERVING", m.GetStatus(), err)
	}
	// A watcher (grpc-go's client-side health checking keeps one open per
	// connection) must not hold the graceful stop until the timeout.
	if _, err := w.Recv(); err == nil {
		t.Error("Watch stream still open after shutdown")
	}
	if err := <-h.runErr; err != nil {
		t.Errorf("Run = %v", err)
	}
	h.runErr <- nil
	if h.logs.seen("shutdown: gRPC calls still running") {
		t.Error("a health watcher made the graceful stop run into its timeout")
	}
}

func TestInFlightCallCompletes(t *testing.T) {
	h := start(t, testConfig())
	errc := h.call(t.Context())
	<-h.id.started

	h.cancel()
	// Release the call only once GracefulStop is under way.
	h.logs.wait(t, "shutdown: stopping")
	h.id.Release()

	if err := <-errc; err != nil {
		t.Errorf("in-flight GetIdentity = %v; want OK", err)
	}
	if err := <-h.runErr; err != nil {
		t.Errorf("Run = %v", err)
	}
	h.runErr <- nil
	if h.logs.seen("shutdown: gRPC calls still running") {
		t.Error("graceful stop ran into its timeout")
	}
	// And after the stop nothing more is served.
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	if _, err := h.check(ctx); status.Code(err) != codes.Unavailable {
		t.Errorf("after stop: Check = %v; want UNAVAILABLE", err)
	}
}

func TestCallBeyondShutdownTimeoutIsCut(t *testing.T) {
	cfg := testConfig()
	cfg.ShutdownTimeout = 100 * time.Millisecond
	h := start(t, cfg)
	errc := h.call(t.Context())
	<-h.id.started

	h.cancel()
	err := <-errc
	if c := status.Code(err); c != codes.Unavailable && c != codes.Canceled {
		t.Errorf("cut call = %v; want UNAVAILABLE or CANCELED", err)
	}
	if err := <-h.id.ended; err == nil {
		t.Error("handler finished normally; want its context cancelled")
	}
	if err := <-h.runErr; err != nil {
		t.Errorf("Run = %v", err)
	}
	h.runErr <- nil
	if !h.logs.seen("shutdown: gRPC calls still running") {
		t.Errorf("no warning about cut calls; logs %q", h.logs.msgs)
	}
}

func TestMaxRecvBytes(t *testing.T) {
	cfg := testConfig()
	h := start(t, cfg)
	tests := []struct {
		name string
		size int
		want codes.Code
	}{
		// Health answers NOT_FOUND for a service it does not know: proof the
		// request got through.
		{"under the limit", cfg.MaxRecvBytes / 2, codes.NotFound},
		{"over the limit", cfg.MaxRecvBytes + 1, codes.ResourceExhausted},
		{"far over the limit", 1 << 20, codes.ResourceExhausted},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := healthpb.NewHealthClient(h.conn).Check(t.Context(),
				&healthpb.HealthCheckRequest{Service: strings.Repeat("x", tt.size)})
			if status.Code(err) != tt.want {
				t.Errorf("Check(%d bytes) = %v; want %v", tt.size, err, tt.want)
			}
		})
	}
	// The server survives: a normal call still works.
	if st, err := h.check(t.Context()); err != nil || st != healthpb.HealthCheckResponse_SERVING {
		t.Errorf("after big requests: Check = %v, %v", st, err)
	}
}

func TestReflectionListsServices(t *testing.T) {
	h := start(t, testConfig())
	stream, err := reflectionpb.NewServerReflectionClient(h.conn).ServerReflectionInfo(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&reflectionpb.ServerReflectionRequest{
		MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{},
	}); err != nil {
		t.Fatal(err)
	}
	resp, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	stream.CloseSend()
	var got []string
	for _, s := range resp.GetListServicesResponse().GetService() {
		got = append(got, s.GetName())
	}
	for _, want := range []string{"grpc.health.v1.Health", "grpc.reflection.v1.ServerReflection", "knowingnode.v1.IdentityService"} {
		if !slices.Contains(got, want) {
			t.Errorf("reflection lists %q; missing %q", got, want)
		}
	}
}

type panicky struct {
	knowingnodev1.UnimplementedIdentityServiceServer
}

func (panicky) GetIdentity(context.Context, *knowingnodev1.GetIdentityRequest) (*knowingnodev1.GetIdentityResponse, error) {
	panic("boom")
}

func TestInterceptors(t *testing.T) {
	var order []string
	var mu sync.Mutex
	mark := func(name string) grpc.UnaryServerInterceptor {
		return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			mu.Lock()
			order = append(order, name)
			mu.Unlock()
			return h(ctx, req)
		}
	}
	logs := newLogWatch()
	var outerSaw error
	outer := func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		mu.Lock()
		order = append(order, "outer")
		mu.Unlock()
		resp, err := h(ctx, req)
		mu.Lock()
		outerSaw = err
		mu.Unlock()
		return resp, err
	}
	// Interceptors of server options (metrics) wrap the shared ones and the
	// binary's (faults), so they count what the client sees.
	srv, err := New(testConfig(), slog.New(logs),
		WithServerOptions(grpc.ChainUnaryInterceptor(outer)),
		WithUnaryInterceptors(mark("a"), mark("b")))
	if err != nil {
		t.Fatal(err)
	}
	knowingnodev1.RegisterIdentityServiceServer(srv.GRPC, panicky{})
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	defer func() { cancel(); <-done }()
	conn, err := grpc.NewClient(srv.GRPCAddr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()

	_, err = knowingnodev1.NewIdentityServiceClient(conn).GetIdentity(ctx, &knowingnodev1.GetIdentityRequest{})
	if status.Code(err) != codes.Internal {
		t.Errorf("panicking handler = %v; want INTERNAL", err)
	}
	if !logs.seen("panic in handler") {
		t.Error("panic not logged")
	}
	mu.Lock()
	if !slices.Equal(order, []string{"outer", "a", "b"}) {
		t.Errorf("interceptors ran %q; want [outer a b]", order)
	}
	if status.Code(outerSaw) != codes.Internal {
		t.Errorf("outer interceptor saw %v; want the recovered panic as INTERNAL", outerSaw)
	}
	mu.Unlock()
	// The process survived the panic.
	if _, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{}); err != nil {
		t.Errorf("after panic: Check = %v", err)
	}
}

func TestHTTPListener(t *testing.T) {
	cfg := testConfig()
	cfg.DrainDelay = 2 * time.Second
	logs := newLogWatch()
	srv, err := New(cfg, slog.New(logs))
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.ListenHTTP("admin", "127.0.0.1:0", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if !srv.Ready() {
			http.Error(w, "shutting down", http.StatusServiceUnavailable)
			return
		}
		io.WriteString(w, "ok")
	})); err != nil {
		t.Fatal(err)
	}
	if err := srv.ListenHTTP("dup", srv.HTTPAddr("admin").String(), http.NotFoundHandler()); err == nil {
		t.Error("second listener on a bound port succeeded")
	}
	addrs := srv.Addrs()
	if len(addrs) != 2 || !strings.HasPrefix(addrs[0], "grpc=127.0.0.1:") || addrs[1] != "admin="+srv.HTTPAddr("admin").String() {
		t.Errorf("Addrs = %q", addrs)
	}
	if srv.HTTPAddr("nope") != nil {
		t.Error("HTTPAddr of an unknown listener is not nil")
	}

	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	logs.wait(t, "serving")
	url := "http://" + srv.HTTPAddr("admin").String() + "/"
	get := func() int {
		resp, err := http.Get(url)
		if err != nil {
			t.Fatalf("GET: %v", err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if c := get(); c != http.StatusOK {
		t.Errorf("while up: %d", c)
	}
	cancel()
	logs.wait(t, "shutdown: NOT_SERVING")
	if c := get(); c != http.StatusServiceUnavailable {
		t.Errorf("during drain: %d; want 503", c)
	}
	if logs.seen("shutdown: stopping") {
		t.Fatal("inconclusive: the drain delay ended before the check")
	}
	if err := <-done; err != nil {
		t.Errorf("Run = %v", err)
	}
	if _, err := http.Get(url); err == nil {
		t.Error("HTTP still served after shutdown")
	}
}

func TestNewPortInUse(t *testing.T) {
	a, err := New(testConfig(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer a.grpcLis.Close()
	defer a.GRPC.Stop() // its stream workers
	cfg := testConfig()
	cfg.GRPCAddr = a.GRPCAddr().String()
	if _, err := New(cfg, slog.New(slog.DiscardHandler)); err == nil || !strings.Contains(err.Error(), cfg.GRPCAddr) {
		t.Errorf("New on a bound port = %v; want an error naming the address", err)
	}
}

func TestConfigDefaultsValid(t *testing.T) {
	var c Config
	s := config.New("t")
	c.Register(s)
	if err := s.Parse(nil, func(string) string { return "" }); err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Errorf("defaults invalid: %v", err)
	}
	if c.MaxConnectionAge == 0 {
		t.Error("MaxConnectionAge off by default; clients behind a ClusterIP would never rebalance")
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name     string
		mutate   func(*Config)
		wantFlag string // "" for valid
	}{
		{"valid", func(*Config) {}, ""},
		{"empty addr", func(c *Config) { c.GRPCAddr = "" }, "-grpc-addr"},
		{"negative drain", func(c *Config) { c.DrainDelay = -time.Second }, "-drain-delay"},
		{"zero drain ok", func(c *Config) { c.DrainDelay = 0 }, ""},
		{"huge drain", func(c *Config) { c.DrainDelay = time.Hour }, "-drain-delay"},
		{"zero shutdown timeout", func(c *Config) { c.ShutdownTimeout = 0 }, "-shutdown-timeout"},
		{"connection age off", func(c *Config) { c.MaxConnectionAge = 0 }, ""},
		{"connection age tiny", func(c *Config) { c.MaxConnectionAge = time.Millisecond }, "-max-connection-age"},
		{"negative grace", func(c *Config) { c.MaxConnectionAgeGrace = -1 }, "-max-connection-age-grace"},
		{"recv too small", func(c *Config) { c.MaxRecvBytes = 10 }, "-max-recv-bytes"},
		{"recv too big", func(c *Config) { c.MaxRecvBytes = 1 << 30 }, "-max-recv-bytes"},
		{"no streams", func(c *Config) { c.MaxConcurrentStreams = 0 }, "-max-concurrent-streams"},
		{"bad log format", func(c *Config) { c.LogFormat = "xml" }, "-log-format"},
		{"bad log level", func(c *Config) { c.LogLevel = "loud" }, "-log-level"},
		{"addr without port", func(c *Config) { c.GRPCAddr = "127.0.0.1" }, "-grpc-addr"},
		{"write timeout below 1s", func(c *Config) { c.HTTPWriteTimeout = time.Millisecond }, "-http-write-timeout"},
		{"write timeout over 1h", func(c *Config) { c.HTTPWriteTimeout = 2 * time.Hour }, "-http-write-timeout"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := testConfig()
			c.LogFormat, c.LogLevel = "json", "info"
			tt.mutate(&c)
			err := c.Validate()
			switch {
			case tt.wantFlag == "" && err != nil:
				t.Errorf("Validate = %v; want nil", err)
			case tt.wantFlag != "" && (err == nil || !strings.Contains(err.Error(), tt.wantFlag)):
				t.Errorf("Validate = %v; want an error naming %s", err, tt.wantFlag)
			}
		})
	}
}

func TestAdvertisedAddrs(t *testing.T) {
	tests := []struct {
		grpcAddr, host string
		wantHost       string // of the grpc entry
	}{
		{"127.0.0.1:0", "10.244.0.5", "127.0.0.1"}, // a specific address stays
		{"0.0.0.0:0", "10.244.0.5", "10.244.0.5"},
		{":0", "10.244.0.5", "10.244.0.5"},
		{":0", "fd00::5", "fd00::5"},
		{"[::]:0", "10.244.0.5", "10.244.0.5"},
		{":0", "", ""}, // no pod IP known: as bound
	}
	for _, tt := range tests {
		cfg := testConfig()
		cfg.GRPCAddr = tt.grpcAddr
		srv, err := New(cfg, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		bound, port, _ := net.SplitHostPort(srv.GRPCAddr().String())
		if tt.wantHost == "" {
			tt.wantHost = bound
		}
		want := "grpc=" + net.JoinHostPort(tt.wantHost, port)
		if got := srv.AdvertisedAddrs(tt.host); len(got) != 1 || got[0] != want {
			t.Errorf("bound %s, host %q: %q; want [%s]", tt.grpcAddr, tt.host, got, want)
		}
		srv.grpcLis.Close()
		srv.GRPC.Stop() // its stream workers
	}
}

type panickyLoad struct {
	knowingnodev1.UnimplementedLoadServiceServer
}

func (panickyLoad) Run(_ *knowingnodev1.RunRequest, s grpc.ServerStreamingServer[knowingnodev1.RunResponse]) error {
	s.Send(&knowingnodev1.RunResponse{})
	var m map[string]int
	m["x"]++ // a runtime panic: assignment to a nil map
	return nil
}

// A panic in a server stream is recovered as a unary one is: the caller
// gets INTERNAL after what was sent, the log names the method, and the
// process serves on (without the interceptor, the panic killed it).
func TestStreamPanicIsInternal(t *testing.T) {
	logs := newLogWatch()
	srv, err := New(testConfig(), slog.New(logs))
	if err != nil {
		t.Fatal(err)
	}
	knowingnodev1.RegisterLoadServiceServer(srv.GRPC, panickyLoad{})
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	defer func() { cancel(); <-done }()
	conn, err := grpc.NewClient(srv.GRPCAddr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	stream, err := knowingnodev1.NewLoadServiceClient(conn).Run(ctx, &knowingnodev1.RunRequest{})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for ; ; n++ {
		if _, err = stream.Recv(); err != nil {
			break
		}
	}
	if n != 1 || status.Code(err) != codes.Internal {
		t.Errorf("panicking stream: %d messages then %v; want 1 then INTERNAL", n, err)
	}
	if !logs.seen("panic in handler") {
		t.Error("panic not logged")
	}
	if _, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{}); err != nil {
		t.Errorf("after the panic: Check = %v", err)
	}
}
