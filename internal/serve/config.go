package serve

import (
	"errors"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/knowingnode/knowingnode/internal/config"
	"github.com/knowingnode/knowingnode/internal/logging"
)

// Config is the serving configuration both binaries share.
type Config struct {
	GRPCAddr              string
	DrainDelay            time.Duration
	ShutdownTimeout       time.Duration
	MaxConnectionAge      time.Duration
	MaxConnectionAgeGrace time.Duration
	HTTPWriteTimeout      time.Duration
	MaxRecvBytes          int
	MaxConcurrentStreams  int
	LogFormat             string
	LogLevel              string
	NoReflection          bool
}

// Limits of the values Register accepts.
const (
	maxRecvLimit       = 16 << 20
	maxStreamsLimit    = 1 << 20
	minConnectionAge   = time.Second
	maxShutdownTimeout = 10 * time.Minute

	// DefaultHTTPWriteTimeout bounds writing a reply: a fan-out may
	// legitimately take its full deadline (at most a minute).
	DefaultHTTPWriteTimeout = 2 * time.Minute
)

// Register defines the shared serving flags on s.
func (c *Config) Register(s *config.Set) {
	s.String(&c.GRPCAddr, "grpc-addr", "GRPC_ADDR", ":9090", "gRPC listen address")
	s.Duration(&c.DrainDelay, "drain-delay", "DRAIN_DELAY", 5*time.Second,
		"on SIGTERM, report NOT_SERVING and keep serving this long before stopping, so endpoints and clients let go")
	s.Duration(&c.ShutdownTimeout, "shutdown-timeout", "SHUTDOWN_TIMEOUT", 10*time.Second,
		"after the drain delay, how long in-flight calls may run before they are cut")
	s.Duration(&c.MaxConnectionAge, "max-connection-age", "MAX_CONNECTION_AGE", 30*time.Second,
		"close client connections after this age so clients behind a ClusterIP rebalance; 0 disables")
	s.Duration(&c.MaxConnectionAgeGrace, "max-connection-age-grace", "MAX_CONNECTION_AGE_GRACE", 10*time.Second,
		"how long calls on an aged connection may finish")
	s.Duration(&c.HTTPWriteTimeout, "http-write-timeout", "HTTP_WRITE_TIMEOUT", DefaultHTTPWriteTimeout,
		"how long an HTTP reply may take to write; streams (NDJSON routes) are exempt and end at shutdown instead")
	s.Int(&c.MaxRecvBytes, "max-recv-bytes", "MAX_RECV_BYTES", 64<<10,
		"largest request message accepted; larger ones get RESOURCE_EXHAUSTED")
	s.Int(&c.MaxConcurrentStreams, "max-concurrent-streams", "MAX_CONCURRENT_STREAMS", 1000,
		"concurrent calls per client connection")
	s.String(&c.LogFormat, "log-format", "LOG_FORMAT", "auto", "log format: auto (text on a terminal, else json), json or text")
	s.String(&c.LogLevel, "log-level", "LOG_LEVEL", "info", "log level: debug, info, warn or error")
	s.Bool(&c.NoReflection, "no-reflection", "NO_REFLECTION", false,
		"do not serve gRPC server reflection, which lists every service and message type (grpcurl then needs the .proto files)")
}

// Validate checks ranges that flag parsing cannot, and the log settings, so
// that a bad value exits 2 naming its flag rather than failing later.
func (c *Config) Validate() error {
	var lvl slog.Level
	formats := []string{logging.FormatAuto, logging.FormatJSON, logging.FormatText}
	return errors.Join(
		config.CheckListenAddr("grpc-addr", c.GRPCAddr, false),
		config.Check(c.DrainDelay >= 0 && c.DrainDelay <= maxShutdownTimeout, "drain-delay", "%v is outside 0s..%v", c.DrainDelay, maxShutdownTimeout),
		config.Check(c.ShutdownTimeout > 0 && c.ShutdownTimeout <= maxShutdownTimeout, "shutdown-timeout", "%v is outside (0s, %v]", c.ShutdownTimeout, maxShutdownTimeout),
		config.Check(c.MaxConnectionAge == 0 || c.MaxConnectionAge >= minConnectionAge, "max-connection-age", "%v: want 0 (off) or at least %v", c.MaxConnectionAge, minConnectionAge),
		config.Check(c.MaxConnectionAgeGrace >= 0, "max-connection-age-grace", "%v must not be negative", c.MaxConnectionAgeGrace),
		config.Check(c.HTTPWriteTimeout >= time.Second && c.HTTPWriteTimeout <= time.Hour, "http-write-timeout", "%v is outside 1s..1h", c.HTTPWriteTimeout),
		config.Check(c.MaxRecvBytes >= 1024 && c.MaxRecvBytes <= maxRecvLimit, "max-recv-bytes", "%d is outside 1024..%d", c.MaxRecvBytes, maxRecvLimit),
		config.Check(c.MaxConcurrentStreams >= 1 && c.MaxConcurrentStreams <= maxStreamsLimit, "max-concurrent-streams", "%d is outside 1..%d", c.MaxConcurrentStreams, maxStreamsLimit),
		config.Check(slices.Contains(formats, strings.ToLower(c.LogFormat)), "log-format", "%q: want auto, json or text", c.LogFormat),
		config.Check(lvl.UnmarshalText([]byte(c.LogLevel)) == nil, "log-level", "%q: want debug, info, warn or error", c.LogLevel),
	)
}
