package load_test

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/durationpb"

	knowingnodev1 "github.com/knowingnode/knowingnode/gen/knowingnode/v1"
	"github.com/knowingnode/knowingnode/harness/proc"
)

// A backend draining during an EACH load (SIGTERM, health NOT_SERVING for
// its --drain-delay) is DRAINING in the load's codes, as FanOut reports it,
// not UNAVAILABLE failures (finding 10 of issue 22).
func TestEachLoadCallsADrainingBackendDraining(t *testing.T) {
	dir := proc.Build(t, "../../backend", "../../frontend")
	var addrs []string
	var backends []*proc.Process
	for i := range 2 {
		b := proc.Start(t, filepath.Join(dir, "backend"), []string{fmt.Sprintf("POD_NAME=backend-%d", i), "NODE_NAME=node-a"},
			"--grpc-addr", "127.0.0.1:0", "--admin-addr", "", "--downward-dir", "", "--drain-delay", "20s")
		backends = append(backends, b)
		addrs = append(addrs, b.Addrs["grpc"])
	}
	fe := proc.Start(t, filepath.Join(dir, "frontend"), []string{"POD_NAME=frontend-0", "NODE_NAME=node-a", "DRAIN_DELAY=0s"},
		"--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0", "--downward-dir", "", "--backend-timeout", "1s",
		"--target", "backends=static:///"+strings.Join(addrs, ","))
	t.Cleanup(func() { fe.Stop(t) })
	cc, err := grpc.NewClient(fe.Addrs["grpc"], grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	if err := backends[1].Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	// Wait until the frontend's health watch has seen NOT_SERVING, as its
	// fan-out reports it; the load then runs well inside the 20 s drain.
	fo := knowingnodev1.NewFanOutServiceClient(cc)
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		resp, err := fo.FanOut(t.Context(), &knowingnodev1.FanOutRequest{Target: "backends", Mode: knowingnodev1.FanOutMode_FAN_OUT_MODE_EACH})
		if err == nil && slices.ContainsFunc(resp.GetResults(), func(r *knowingnodev1.BackendResult) bool { return r.GetCode() == "DRAINING" }) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the fan-out never saw backend-1 draining: %v %v", resp, err)
		}
	}
	_, sum, err := runGRPC(t.Context(), knowingnodev1.NewLoadServiceClient(cc), &knowingnodev1.RunRequest{
		Target: "backends", Mode: knowingnodev1.FanOutMode_FAN_OUT_MODE_EACH, Rate: 40, Duration: durationpb.New(1500 * time.Millisecond),
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("sent %d ok %d failed %d codes %v by pod %v", sum.Sent, sum.Ok, sum.Failed, sum.ByCode, sum.ByPod)
	if sum.ByCode["DRAINING"] < 10 || sum.ByCode["UNAVAILABLE"] != 0 || sum.Failed != 0 {
		t.Errorf("codes %v, failed %d; want about half DRAINING (the draining backend's turns), no UNAVAILABLE, no failure", sum.ByCode, sum.Failed)
	}
	if sum.ByPod["backend-1"] != 0 || sum.ByPod["backend-0"] == 0 {
		t.Errorf("by pod %v; want only backend-0 answering", sum.ByPod)
	}
}
