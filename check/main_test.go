package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/knowingnode/knowingnode/harness/clusterdns"
	"github.com/knowingnode/knowingnode/harness/loopbackpods"
	"github.com/knowingnode/knowingnode/harness/proc"
)

// TestCheck runs the check against the real backend and frontend binaries:
// it passes on a healthy pair and fails, naming the address and the
// problem, on a backend that fails every call and on an address that never
// answers.
func TestCheck(t *testing.T) {
	bin := proc.Build(t, "../backend", "../frontend")
	startPair := func(t *testing.T, backendEnv ...string) (backend, frontend string) {
		be := proc.Start(t, filepath.Join(bin, "backend"),
			append([]string{"GRPC_ADDR=127.0.0.1:0", "ADMIN_ADDR=127.0.0.1:0", "DOWNWARD_DIR=", "DRAIN_DELAY=0s"}, backendEnv...))
		fe := proc.Start(t, filepath.Join(bin, "frontend"), []string{
			"GRPC_ADDR=127.0.0.1:0", "HTTP_ADDR=127.0.0.1:0", "DOWNWARD_DIR=", "DRAIN_DELAY=0s",
			"TARGETS=backend=static:///" + be.Addrs["grpc"]})
		return be.Addrs["grpc"], fe.Addrs["grpc"]
	}

	t.Run("healthy", func(t *testing.T) {
		be, fe := startPair(t)
		var out bytes.Buffer
		if err := run(t.Context(), []string{"-backend", be, "-frontend", fe}, &out); err != nil {
			t.Fatalf("check failed on a healthy pair: %v\n%s", err, out.String())
		}
		for _, want := range []string{
			be + ` health "knowingnode.v1.IdentityService" SERVING`,
			fe + ` health "knowingnode.v1.FanOutService" SERVING`,
			"1 of 1 backends answered",
		} {
			if !strings.Contains(out.String(), want) {
				t.Errorf("output lacks %q:\n%s", want, out.String())
			}
		}
	})

	t.Run("failing backend", func(t *testing.T) {
		be, fe := startPair(t, "FAULT_ERROR_RATE=1", "FAULT_ERROR_CODE=INTERNAL")
		// Retried until the deadline, then the last failure is reported.
		err := run(t.Context(), []string{"-timeout=3s", "-backend", be, "-frontend", fe}, new(bytes.Buffer))
		if err == nil || !strings.Contains(err.Error(), fe+": fan-out") || !strings.Contains(err.Error(), "0 of 1 calls ok") || !strings.Contains(err.Error(), "INTERNAL") {
			t.Errorf("check = %v; want a fan-out failure naming the frontend, 0 of 1 and INTERNAL", err)
		}
	})

	t.Run("backends found late", func(t *testing.T) {
		// The frontend starts before its Service has any address in DNS,
		// as right after an install; the check waits for discovery.
		ips, port := loopbackpods.Start(t, 2, 71, "web")
		dns, err := clusterdns.Start("127.0.0.1:0", "cluster.local.")
		if err != nil {
			t.Fatal(err)
		}
		defer dns.Close()
		fe := proc.Start(t, filepath.Join(bin, "frontend"), []string{
			"GRPC_ADDR=127.0.0.1:0", "HTTP_ADDR=127.0.0.1:0", "DOWNWARD_DIR=", "DRAIN_DELAY=0s", "REFRESH_INTERVAL=1s",
			fmt.Sprintf("TARGETS=backend=dns://%s/web.ns.svc.cluster.local:%d", dns.Addr(), port)})
		time.AfterFunc(2*time.Second, func() {
			svc := clusterdns.Service{Namespace: "ns", Name: "web", ClusterIP: "None", Ports: []clusterdns.Port{{Name: "grpc", Port: port}}}
			for _, ip := range ips {
				svc.Endpoints = append(svc.Endpoints, clusterdns.Endpoint{IP: ip})
			}
			dns.SetService(svc)
		})
		var out bytes.Buffer
		if err := run(t.Context(), []string{"-timeout=20s", "-frontend", fe.Addrs["grpc"]}, &out); err != nil {
			t.Fatalf("check = %v; want it to wait for the backends to be discovered\n%s", err, out.String())
		}
		if !strings.Contains(out.String(), "retry ") || !strings.Contains(out.String(), "2 of 2 backends answered") {
			t.Errorf("want retries, then both backends:\n%s", out.String())
		}
	})

	t.Run("nothing listening", func(t *testing.T) {
		// Port 1 on loopback: nothing listens there, and nothing is handed
		// to a child process.
		err := run(context.Background(), []string{"-timeout=1s", "-backend", "127.0.0.1:1"}, new(bytes.Buffer))
		if err == nil || !strings.Contains(err.Error(), "127.0.0.1:1: health") || !strings.Contains(err.Error(), "DeadlineExceeded") {
			t.Errorf("check = %v; want a health failure naming 127.0.0.1:1 at the deadline", err)
		}
	})

	t.Run("help", func(t *testing.T) {
		var out bytes.Buffer
		if err := run(t.Context(), []string{"-h"}, &out); !errors.Is(err, flag.ErrHelp) || !strings.Contains(out.String(), "Usage of check") {
			t.Errorf("check -h = %v, printed %q; want flag.ErrHelp and the usage", err, out.String())
		}
	})

	t.Run("usage", func(t *testing.T) {
		for _, args := range [][]string{nil, {"extra"}, {"-backend", "a:1", "extra"}} {
			if err := run(t.Context(), args, new(bytes.Buffer)); err == nil || !strings.Contains(err.Error(), "usage") {
				t.Errorf("check %q = %v; want a usage error", args, err)
			}
		}
	})
}
