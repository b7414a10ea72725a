// Command backend is the knowing node: a gRPC server that tells who and where
// it runs, from the Kubernetes Downward API.
package main

import (
	"context"
	"fmt"
	"io"
	"os"

	"github.com/knowingnode/knowingnode/backend/fault"
	"github.com/knowingnode/knowingnode/backend/loadreport"
	knowingnodev1 "github.com/knowingnode/knowingnode/gen/knowingnode/v1"
	"github.com/knowingnode/knowingnode/internal/config"
	"github.com/knowingnode/knowingnode/internal/serve"
	"github.com/knowingnode/knowingnode/internal/tier"
)

type flags struct {
	tier  tier.Config
	fault fault.Config
	load  loadreport.Config
}

func parseFlags(args []string) *flags {
	f := &flags{}
	s := config.New("backend")
	f.tier.Register(s, ":9091")
	f.fault.Register(s)
	f.load.Register(s)
	// Method values on pointers: each sees the values parsing fills in.
	s.ParseOrExit(args, f.tier.Validate, f.fault.Validate, func() error { return f.load.Validate() })
	return f
}

func main() {
	f := parseFlags(os.Args[1:])
	tier.Main("backend", func(ctx context.Context) error { return run(ctx, f, os.Stderr) })
}

func run(ctx context.Context, f *flags, logw io.Writer) error {
	// The load report wraps fault injection, so injected failures and
	// latency are in the rates it reports.
	lr := loadreport.New(f.load)
	defer lr.Close()
	opts := []serve.Option{serve.WithServerOptions(lr.ServerOptions()...)}
	if f.fault.Enabled() {
		opts = append(opts, serve.WithUnaryInterceptors(fault.Interceptor(f.fault, nil)))
	}
	t, err := tier.New(ctx, f.tier, knowingnodev1.Tier_TIER_BACKEND, logw, opts...)
	if err != nil {
		return err
	}
	if f.fault.Enabled() {
		t.Log.Warn("fault injection on", "latency", f.fault.Latency, "jitter", f.fault.Jitter,
			"error_rate", f.fault.ErrorRate, "error_code", fault.CodeFlag{Code: &f.fault.ErrorCode}.String())
	}
	if err := lr.Register(t.Server.GRPC, t.Server.Stopping()); err != nil {
		t.Stop()
		return fmt.Errorf("ORCA service: %w", err)
	}
	if !f.load.Off {
		t.Log.Info("ORCA load reports on", "cpu", lr.CPUSource(), "utilization", f.load.Utilization, "capacity", f.load.Capacity, "interval", f.load.Interval.String())
	}
	return t.Run(ctx)
}
