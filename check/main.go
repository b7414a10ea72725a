// Command check is the `helm test` of the knowingnode chart: it checks one
// topology from inside the cluster and exits 0 only when every check passed.
// It asks each backend and each frontend address for gRPC health (overall
// and per service), then asks the frontend for one EACH fan-out and requires
// that it reached at least one backend and that every call succeeded.
//
//	check -backend backend.knowingnode.svc.cluster.local:9090 \
//	      -frontend frontend-deployment.knowingnode.svc.cluster.local:9090
//
// It lives in the image beside the two servers because the image has no
// shell and no other client (grpcurl, grpc-health-probe) to run.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	knowingnodev1 "github.com/knowingnode/knowingnode/gen/knowingnode/v1"
)

type addrs []string

func (a *addrs) String() string     { return strings.Join(*a, ",") }
func (a *addrs) Set(s string) error { *a = append(*a, s); return nil }

func main() {
	err := run(context.Background(), os.Args[1:], os.Stdout)
	if errors.Is(err, flag.ErrHelp) {
		return // -h: the usage went to stdout
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "check: %v\n", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("check", flag.ContinueOnError)
	fs.SetOutput(out)
	var backends, frontends addrs
	fs.Var(&backends, "backend", "a backend's gRPC address host:port (repeatable)")
	fs.Var(&frontends, "frontend", "a frontend's gRPC address host:port (repeatable)")
	timeout := fs.Duration("timeout", 30*time.Second, "deadline of all checks together")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if len(backends)+len(frontends) == 0 || fs.NArg() > 0 {
		return errors.New("usage: check -backend host:port ... -frontend host:port ... (at least one address, no arguments)")
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()

	var errs []error
	for _, a := range backends {
		errs = append(errs, checkAddr(ctx, out, a, "knowingnode.v1.IdentityService", false))
	}
	for _, a := range frontends {
		errs = append(errs, checkAddr(ctx, out, a, "knowingnode.v1.FanOutService", true))
	}
	return errors.Join(errs...)
}

// checkAddr checks the health of "" and of service at addr and, for a
// frontend, one fan-out.
func checkAddr(ctx context.Context, out io.Writer, addr, service string, fanOut bool) error {
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return fmt.Errorf("%s: %w", addr, err)
	}
	defer conn.Close()
	health := healthpb.NewHealthClient(conn)
	for _, s := range []string{"", service} {
		// WaitForReady rides out a pod that is still starting.
		r, err := health.Check(ctx, &healthpb.HealthCheckRequest{Service: s}, grpc.WaitForReady(true))
		if err != nil {
			return fmt.Errorf("%s: health of %q: %w", addr, s, err)
		}
		if r.GetStatus() != healthpb.HealthCheckResponse_SERVING {
			return fmt.Errorf("%s: health of %q is %s, want SERVING", addr, s, r.GetStatus())
		}
		fmt.Fprintf(out, "ok   %s health %q SERVING\n", addr, s)
	}
	if !fanOut {
		return nil
	}
	// A frontend that has just started may not have discovered its backends
	// yet (it resolves every few seconds, and `helm test` can run the moment
	// the pods are Ready): the fan-out is tried every second until it
	// reaches every backend or the deadline passes, which reports the last
	// failure.
	fan := knowingnodev1.NewFanOutServiceClient(conn)
	var last error
	for {
		err := fanOutOnce(ctx, fan, out, addr)
		if err == nil {
			return nil
		}
		if ctx.Err() == nil || last == nil {
			last = err // not the deadline's own error over a real one
		}
		select {
		case <-ctx.Done():
			return last
		case <-time.After(time.Second):
			fmt.Fprintf(out, "retry %v\n", last)
		}
	}
}

func fanOutOnce(ctx context.Context, fan knowingnodev1.FanOutServiceClient, out io.Writer, addr string) error {
	r, err := fan.FanOut(ctx, &knowingnodev1.FanOutRequest{Mode: knowingnodev1.FanOutMode_FAN_OUT_MODE_EACH})
	if err != nil {
		return fmt.Errorf("%s: fan-out: %w", addr, err)
	}
	sum := r.GetSummary()
	if sum.GetTotal() == 0 || sum.GetFailed() != 0 || sum.GetOk() != sum.GetTotal() {
		return fmt.Errorf("%s: fan-out to %s: %d of %d calls ok (by code %v), want all and at least one",
			addr, r.GetTarget(), sum.GetOk(), sum.GetTotal(), sum.GetByCode())
	}
	fmt.Fprintf(out, "ok   %s fan-out to %s: %d of %d backends answered, pods %v\n",
		addr, r.GetTarget(), sum.GetOk(), sum.GetTotal(), sum.GetByPod())
	return nil
}
