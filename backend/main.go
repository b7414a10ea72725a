// Command backend is the knowing node: a gRPC server that tells who and where
// it runs, from the Kubernetes Downward API.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/knowingnode/knowingnode/backend/fault"
	knowingnodev1 "github.com/knowingnode/knowingnode/gen/knowingnode/v1"
	"github.com/knowingnode/knowingnode/internal/config"
	"github.com/knowingnode/knowingnode/internal/identity"
	"github.com/knowingnode/knowingnode/internal/logging"
	"github.com/knowingnode/knowingnode/internal/serve"
	"github.com/knowingnode/knowingnode/internal/telemetry"
)

type flags struct {
	serve       serve.Config
	adminAddr   string
	pprof       bool
	downwardDir string
	fault       fault.Config
}

func parseFlags(args []string) *flags {
	f := &flags{fault: fault.Config{ErrorCode: codes.Unavailable}}
	s := config.New("backend")
	f.serve.Register(s)
	s.String(&f.adminAddr, "admin-addr", "ADMIN_ADDR", ":9091", "admin HTTP listen address (/healthz, /metrics); empty disables")
	s.Bool(&f.pprof, "pprof", "PPROF", false, "serve net/http/pprof under /debug/pprof/ on the admin port")
	s.String(&f.downwardDir, "downward-dir", "DOWNWARD_DIR", "/etc/downward", "directory of the Downward API volume (files labels, annotations); empty skips it")
	s.Duration(&f.fault.Latency, "fault-latency", "FAULT_LATENCY", 0, "fault injection: latency added to every Identity call")
	s.Duration(&f.fault.Jitter, "fault-jitter", "FAULT_JITTER", 0, "fault injection: plus a uniformly random latency up to this")
	s.Float(&f.fault.ErrorRate, "fault-error-rate", "FAULT_ERROR_RATE", 0, "fault injection: fraction 0..1 of Identity calls that fail")
	s.Var(fault.CodeFlag{Code: &f.fault.ErrorCode}, "fault-error-code", "FAULT_ERROR_CODE", "fault injection: the gRPC code of injected failures (default UNAVAILABLE)")
	s.ParseOrExit(args)
	if err := errors.Join(f.serve.Validate(), f.fault.Validate()); err != nil {
		// One line however many flags are wrong, as for parse errors.
		fmt.Fprintf(os.Stderr, "backend: %s\n", strings.ReplaceAll(err.Error(), "\n", "; "))
		os.Exit(2)
	}
	return f
}

func main() {
	f := parseFlags(os.Args[1:])
	ctx, stop := serve.SignalContext()
	defer stop()
	if err := run(ctx, f, os.Stderr); err != nil {
		fmt.Fprintf(os.Stderr, "backend: %v\n", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, f *flags, logw io.Writer) error {
	start := time.Now()
	log, err := logging.New(logw, f.serve.LogFormat, f.serve.LogLevel)
	if err != nil {
		return err
	}
	id := identity.Load(identity.Options{
		Tier:        knowingnodev1.Tier_TIER_BACKEND,
		DownwardDir: f.downwardDir,
		StartTime:   start,
		Logger:      log,
	})
	tel, err := telemetry.New(ctx, telemetry.Options{Service: "knowingnode-backend", Identity: id, Getenv: os.Getenv})
	if err != nil {
		return err
	}
	defer tel.Shutdown(context.WithoutCancel(ctx))
	opts := []serve.Option{serve.WithServerOptions(tel.ServerOptions()...)}
	if f.fault.Enabled() {
		log.Warn("fault injection on", "latency", f.fault.Latency, "jitter", f.fault.Jitter,
			"error_rate", f.fault.ErrorRate, "error_code", fault.CodeFlag{Code: &f.fault.ErrorCode}.String())
		opts = append(opts, serve.WithUnaryInterceptors(fault.Interceptor(f.fault, nil)))
	}
	srv, err := serve.New(f.serve, log, opts...)
	if err != nil {
		return err
	}
	if f.adminAddr != "" {
		if err := srv.ListenHTTP("admin", f.adminAddr, tel.AdminHandler(srv.Ready, f.pprof)); err != nil {
			return err
		}
	}
	id.ServingAddresses = srv.AdvertisedAddrs(id.PodIp)
	idSrv := identity.NewServer(id)
	knowingnodev1.RegisterIdentityServiceServer(srv.GRPC, idSrv)
	if err := srv.CacheReply(idSrv.Response()); err != nil {
		return fmt.Errorf("encode identity: %w", err)
	}
	serve.TuneGC(log, os.Getenv, id.MemoryLimitBytes)
	tel.InitializeServerMetrics(srv.GRPC)
	return srv.Run(ctx)
}
