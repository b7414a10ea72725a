package calls_test

import (
	"context"
	"net"
	"sync/atomic"
	"testing"
	"time"

	v3orcapb "github.com/cncf/xds/go/xds/data/orca/v3"
	"google.golang.org/protobuf/proto"

	"google.golang.org/grpc"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"

	knowingnodev1 "github.com/knowingnode/knowingnode/gen/knowingnode/v1"
	"github.com/knowingnode/knowingnode/internal/balancing"
	"github.com/knowingnode/knowingnode/internal/identity"
	"github.com/knowingnode/knowingnode/internal/load/calls"
	"github.com/knowingnode/knowingnode/internal/load/engine"
)

// backend serves GetIdentity and gRPC health, and returns a client that
// watches that health, as the frontend's pool and bin/load's round robin do.
func backend(t *testing.T) (*health.Server, *grpc.ClientConn) {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	knowingnodev1.RegisterIdentityServiceServer(srv, identity.NewServer(&knowingnodev1.Identity{PodName: "backend-0", NodeName: "node-a"}))
	hs := health.NewServer()
	healthpb.RegisterHealthServer(srv, hs)
	go srv.Serve(lis)
	t.Cleanup(srv.Stop)
	cc, err := grpc.NewClient("passthrough:///"+lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultServiceConfig(`{"loadBalancingConfig":[{"round_robin":{}}],"healthCheckConfig":{"serviceName":""}}`))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return hs, cc
}

// A backend that announced its drain (health NOT_SERVING) is DRAINING in a
// load, as in a fan-out: not a failure, and no latency sample. It was
// counted as UNAVAILABLE failures before.
func TestIdentityDrainingIsNotAFailure(t *testing.T) {
	for name, caller := range map[string]func(grpc.ClientConnInterface) engine.Caller{
		"Identity": func(cc grpc.ClientConnInterface) engine.Caller { return calls.Identity(cc) },
		// bin/load's gRPC identity call, with the ORCA reports read.
		"IdentityReported": func(cc grpc.ClientConnInterface) engine.Caller {
			return calls.IdentityReported(calls.IdentityOptions{LoadReports: true}, cc)
		},
	} {
		t.Run(name, func(t *testing.T) {
			hs, cc := backend(t)
			call := caller(cc)
			sum, err := engine.Run(t.Context(), engine.Config{Concurrency: 1, Count: 5}, call, nil)
			if err != nil || sum.OK != 5 {
				t.Fatalf("serving: %v, ok %d codes %v", err, sum.OK, sum.ByCode)
			}
			hs.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
			// The health watch tells the channel asynchronously: wait for it.
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			defer cancel()
			for s := cc.GetState(); s != connectivity.TransientFailure; s = cc.GetState() {
				if !cc.WaitForStateChange(ctx, s) {
					t.Fatalf("the channel stayed %v after NOT_SERVING", s)
				}
			}
			sum, err = engine.Run(t.Context(), engine.Config{Concurrency: 1, Count: 5}, call, nil)
			if err != nil {
				t.Fatal(err)
			}
			if sum.ByCode[calls.CodeDraining] != 5 || sum.Failed != 0 || sum.Draining != 5 || sum.Latency.Max != 0 {
				t.Errorf("draining backend: codes %v, failed %d, draining %d, latency %+v; want 5 DRAINING, no failure, no latency sample",
					sum.ByCode, sum.Failed, sum.Draining, sum.Latency)
			}
		})
	}
}

// IdentityPick with no endpoint fails as UNAVAILABLE, naming why.
func TestIdentityPickNoEndpoints(t *testing.T) {
	call := calls.IdentityPick(func(uint64) knowingnodev1.IdentityServiceClient { return nil })
	sum, err := engine.Run(t.Context(), engine.Config{Concurrency: 1, Count: 2}, call, nil)
	if err != nil || sum.ByCode["UNAVAILABLE"] != 2 {
		t.Errorf("err %v codes %v, want 2 UNAVAILABLE", err, sum.ByCode)
	}
}

// A fan-out's DRAINING backend result is kept apart: not read as OK (the
// zero code), nor as a failure; a code that is no code is UNKNOWN.
func TestFanOutResultDraining(t *testing.T) {
	r := calls.FanOutResult(&knowingnodev1.FanOutResponse{
		Frontend: &knowingnodev1.Identity{PodName: "frontend-0"},
		Results: []*knowingnodev1.BackendResult{
			{Code: "OK", Calls: 1, Identity: &knowingnodev1.Identity{PodName: "backend-0"}},
			{Code: "DRAINING", Calls: 1},
			{Code: "WHATEVER", Calls: 1},
		},
	})
	if len(r.Backends) != 3 || r.Backends[0].Draining || !r.Backends[1].Draining || r.Backends[2].Code.String() != "Unknown" {
		t.Errorf("hits %+v; want OK, draining, UNKNOWN", r.Backends)
	}
	sum, err := engine.Run(t.Context(), engine.Config{Concurrency: 1, Count: 1},
		func(context.Context) (engine.Result, error) { return r, nil }, nil)
	if err != nil {
		t.Fatal(err)
	}
	if sum.BackendByCode["DRAINING"] != 1 || sum.BackendByCode["OK"] != 1 || sum.BackendByCode["UNKNOWN"] != 1 || len(sum.BackendByPod) != 1 {
		t.Errorf("backend codes %v, pods %v; want OK, DRAINING and UNKNOWN once each, one backend pod", sum.BackendByCode, sum.BackendByPod)
	}
}

// A backend gives each connection each new load report once: the calls
// whose trailer has none carry their pod's last report, so a window or a
// run shows the pod's load whichever of its calls brought it.
func TestIdentityReportedKeepsThePodsLastReport(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	report, err := proto.Marshal(&v3orcapb.OrcaLoadReport{ApplicationUtilization: 0.7, RpsFractional: 10})
	if err != nil {
		t.Fatal(err)
	}
	var n atomic.Int32
	first := func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		if n.Add(1) == 1 {
			grpc.SetTrailer(ctx, metadata.Pairs(balancing.TrailerKey, string(report)))
		}
		return h(ctx, req)
	}
	srv := grpc.NewServer(grpc.UnaryInterceptor(first))
	knowingnodev1.RegisterIdentityServiceServer(srv, identity.NewServer(&knowingnodev1.Identity{PodName: "backend-0"}))
	go srv.Serve(lis)
	t.Cleanup(srv.Stop)
	cc, err := grpc.NewClient("passthrough:///"+lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	call := calls.IdentityReported(calls.IdentityOptions{LoadReports: true}, cc)
	for i := range 5 {
		r, err := call(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if r.Load == nil || r.Load.ApplicationUtilization != 0.7 || r.Load.QPS != 10 {
			t.Errorf("call %d: load %+v, want the pod's last report (0.7, 10/s)", i, r.Load)
		}
	}
}
