package main

import (
	"bufio"
	"context"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	knowingnodev1 "github.com/knowingnode/knowingnode/gen/knowingnode/v1"
	"github.com/knowingnode/knowingnode/harness/proc"
)

func fanOutClient(t *testing.T, addr string) knowingnodev1.FanOutServiceClient {
	t.Helper()
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return knowingnodev1.NewFanOutServiceClient(cc)
}

// A fan-out still running when the servers are cut (the shutdown timeout
// passed) ends with the process, which exits cleanly and soon: the
// teardown (fan-outs, discovery, pools) neither panics nor waits for it.
// The panic itself ("send on closed channel") is TestCloseWhileFanOutsRun's:
// here the cut usually ends the fan-out before the old teardown reached it.
func TestShutdownDuringFanOutIsClean(t *testing.T) {
	dir := proc.Build(t, "../backend", ".")
	slow := startProcess(t, dir, "backend", []string{"POD_NAME=slow"},
		"--grpc-addr", "127.0.0.1:0", "--admin-addr", "", "--downward-dir", "", "--fault-latency", "100ms")
	fe := startProcess(t, dir, "frontend", []string{"POD_NAME=frontend-0", "SHUTDOWN_TIMEOUT=300ms"},
		"--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0", "--downward-dir", "",
		"--fanout-concurrency", "1", "--target", "slow=static:///"+slow.Addrs["grpc"])
	started := make(chan struct{})
	go func() {
		close(started)
		// 10000 calls one at a time: the fan-out is still handing calls out
		// when the servers stop.
		fanOutClient(t, fe.Addrs["grpc"]).FanOut(context.Background(), &knowingnodev1.FanOutRequest{
			Mode: knowingnodev1.FanOutMode_FAN_OUT_MODE_BALANCED, Count: 10000, Timeout: durationpb.New(time.Minute)})
	}()
	<-started
	time.Sleep(500 * time.Millisecond) // a few calls made
	start := time.Now()
	if code := fe.Stop(t); code != 0 {
		t.Errorf("frontend exited %d after SIGTERM during a fan-out; want 0", code)
	}
	t.Logf("frontend stopped %v after SIGTERM (drain 0s, shutdown timeout 300ms)", time.Since(start))
}

// A second SIGTERM during the drain exits at once instead of waiting for it.
func TestSecondSignalExitsAtOnce(t *testing.T) {
	dir := proc.Build(t, ".")
	fe := startProcess(t, dir, "frontend", []string{"POD_NAME=frontend-0", "DRAIN_DELAY=60s"},
		"--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0", "--downward-dir", "",
		"--target", "none=static:///127.0.0.1:1")
	fe.Cmd.Process.Signal(syscall.SIGTERM)
	// The drain has begun once readiness fails.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if code := httpStatus(t, "http://"+fe.Addrs["http"]+"/readyz"); code == 503 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("readiness did not fail after SIGTERM")
		}
	}
	start := time.Now()
	fe.Cmd.Process.Signal(syscall.SIGTERM)
	if code := fe.Wait(t); code != 1 { // proc.Wait gives up after 30s, half the drain
		t.Errorf("exit code %d after a second SIGTERM, want 1", code)
	}
	t.Logf("exited %v after the second SIGTERM (drain delay 60s)", time.Since(start))
}

// A backend's SIGTERM turns it NOT_SERVING for its drain delay: the
// frontend's EACH reports it as draining, never as failed, and BALANCED stops
// calling it.
func TestBackendDrainSeenByFrontend(t *testing.T) {
	dir := proc.Build(t, "../backend", ".")
	var addrs []string
	var backends []*proc.Process
	for _, pod := range []string{"backend-0", "backend-1", "backend-2"} {
		b := startProcess(t, dir, "backend", []string{"POD_NAME=" + pod, "DRAIN_DELAY=4s"},
			"--grpc-addr", "127.0.0.1:0", "--admin-addr", "", "--downward-dir", "")
		backends = append(backends, b)
		addrs = append(addrs, b.Addrs["grpc"])
	}
	fe := startProcess(t, dir, "frontend", []string{"POD_NAME=frontend-0"},
		"--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0", "--downward-dir", "",
		"--target", "b=static:///"+strings.Join(addrs, ","))
	c := fanOutClient(t, fe.Addrs["grpc"])
	if resp, err := c.FanOut(t.Context(), &knowingnodev1.FanOutRequest{}); err != nil || resp.Summary.Ok != 3 {
		t.Fatalf("before the drain: %v %v", err, resp.GetSummary())
	}

	sigterm := time.Now()
	backends[2].Cmd.Process.Signal(syscall.SIGTERM)
	// Within the 4s drain delay (with a margin before the server stops).
	var fanouts, draining, failed, balanced, balancedOnDrainer int
	var firstDraining time.Duration
	for time.Since(sigterm) < 2500*time.Millisecond {
		resp, err := c.FanOut(t.Context(), &knowingnodev1.FanOutRequest{})
		if err != nil {
			t.Fatal(err)
		}
		fanouts++
		failed += int(resp.Summary.Failed)
		if resp.Summary.Draining > 0 {
			if draining == 0 {
				firstDraining = time.Since(sigterm)
			}
			draining += int(resp.Summary.Draining)
			if r := resp.Results[2]; r.Code != "DRAINING" {
				t.Errorf("draining result is %s for %s, want backend-2's address %s", r.Code, r.Address, addrs[2])
			}
			// The balanced channel has its own health watch, which hears
			// the same update within moments: give it 200ms.
			if time.Since(sigterm)-firstDraining > 200*time.Millisecond {
				b, err := c.FanOut(t.Context(), &knowingnodev1.FanOutRequest{Mode: knowingnodev1.FanOutMode_FAN_OUT_MODE_BALANCED, Count: 30})
				if err != nil {
					t.Fatal(err)
				}
				balanced++
				balancedOnDrainer += int(b.Summary.ByPod["backend-2"])
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("during the drain: %d EACH fan-outs, %d draining results (first %v after SIGTERM), %d failed; %d BALANCED count=30 fan-outs from 200ms after that made %d calls on the drainer",
		fanouts, draining, firstDraining, failed, balanced, balancedOnDrainer)
	if draining == 0 {
		t.Error("no EACH fan-out reported the draining backend")
	}
	if failed != 0 {
		t.Errorf("%d backend results failed during the drain; want 0", failed)
	}
	if balanced == 0 || balancedOnDrainer != 0 {
		t.Errorf("BALANCED made %d calls on the drainer after it reported NOT_SERVING", balancedOnDrainer)
	}
}

func httpStatus(t *testing.T, url string) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// Open watches (gRPC and REST) do not hold a graceful stop for its whole
// timeout: they end when the stop phase begins, with UNAVAILABLE.
func TestShutdownEndsWatches(t *testing.T) {
	dir := proc.Build(t, ".")
	fe := startProcess(t, dir, "frontend", []string{"POD_NAME=frontend-0", "SHUTDOWN_TIMEOUT=60s"},
		"--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0", "--downward-dir", "",
		"--target", "none=static:///127.0.0.1:1")
	w, err := fanOutClient(t, fe.Addrs["grpc"]).WatchTargets(t.Context(), &knowingnodev1.WatchTargetsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if m, err := w.Recv(); err != nil || m.GetTarget().GetName() != "none" {
		t.Fatalf("first watch message: %v %v", m, err)
	}
	resp, err := http.Get("http://" + fe.Addrs["http"] + "/v1/targets:watch")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body := bufio.NewScanner(resp.Body)
	if !body.Scan() || !strings.Contains(body.Text(), `"name":"none"`) {
		t.Fatalf("first REST watch line: %q %v", body.Text(), body.Err())
	}
	start := time.Now()
	if code := fe.Stop(t); code != 0 {
		t.Errorf("frontend exited %d with watches open; want 0", code)
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("stop took %v with watches open; want far less than the 60s shutdown timeout", took)
	}
	if _, err := w.Recv(); status.Code(err) != codes.Unavailable {
		t.Errorf("gRPC watch after the stop: %v; want UNAVAILABLE", err)
	}
	if body.Scan() && !strings.Contains(body.Text(), "shutting down") {
		t.Errorf("REST watch's last line %q; want the shutdown error", body.Text())
	}
	t.Logf("frontend stopped %v after SIGTERM with 2 watches open (shutdown timeout 60s)", time.Since(start))
}
