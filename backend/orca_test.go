package main

import (
	"context"
	"slices"
	"testing"
	"time"

	v3orcaservicepb "github.com/cncf/xds/go/xds/service/orca/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	knowingnodev1 "github.com/knowingnode/knowingnode/gen/knowingnode/v1"
	"github.com/knowingnode/knowingnode/internal/balancing"
)

const orcaService = "xds.service.orca.v3.OpenRcaService"

// testORCA: the backend returns a load report with its calls and
// serves the out-of-band stream (listed by reflection, as grpcurl list
// shows it); --no-orca turns both off.
func testORCA(t *testing.T, bin string) {
	p := runBackend(t, bin, []string{"POD_NAME=backend-0"}, "--grpc-addr", "127.0.0.1:0", "--admin-addr", "",
		"--downward-dir", "", "--drain-delay", "0s", "--orca-utilization", "0.7", "--orca-interval", "50ms")
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()

	// Per call: the claim, then the rate of calls once a sample has seen
	// some; each sample on the connection's first call after it.
	client := knowingnodev1.NewIdentityServiceClient(p.conn)
	var rep balancing.Report
	for rep.QPS == 0 {
		var tr metadata.MD
		if _, err := client.GetIdentity(ctx, &knowingnodev1.GetIdentityRequest{}, grpc.Trailer(&tr)); err != nil {
			t.Fatal(err)
		}
		if r, ok := balancing.ParseTrailer(tr); ok {
			if rep = r; rep.ApplicationUtilization < 0.7 {
				t.Fatalf("per-call report %+v: application utilization below the claimed 0.7", rep)
			}
		}
		if ctx.Err() != nil {
			t.Fatalf("no per-call report with a rate; the last %+v", rep)
		}
		time.Sleep(10 * time.Millisecond)
	}

	// Out of band: the first report comes at once.
	if services := listServices(t, p.conn); !slices.Contains(services, orcaService) {
		t.Errorf("reflection lists %q; missing %s", services, orcaService)
	}
	sctx, scancel := context.WithCancel(ctx)
	stream, err := v3orcaservicepb.NewOpenRcaServiceClient(p.conn).StreamCoreMetrics(sctx, &v3orcaservicepb.OrcaLoadReportRequest{})
	if err != nil {
		t.Fatal(err)
	}
	lr, err := stream.Recv()
	scancel()
	if err != nil {
		t.Fatalf("out-of-band report: %v", err)
	}
	if oob := balancing.FromProto(lr); oob.ApplicationUtilization < 0.7 || lr.GetRpsFractional() < 0 {
		t.Errorf("out-of-band report %+v, want the claimed application utilization 0.7", lr)
	}
	p.Stop(t)

	off := runBackend(t, bin, []string{"POD_NAME=backend-1"}, "--grpc-addr", "127.0.0.1:0", "--admin-addr", "",
		"--downward-dir", "", "--drain-delay", "0s", "--no-orca")
	var tr metadata.MD
	if _, err := knowingnodev1.NewIdentityServiceClient(off.conn).GetIdentity(ctx, &knowingnodev1.GetIdentityRequest{}, grpc.Trailer(&tr)); err != nil {
		t.Fatal(err)
	}
	if _, ok := balancing.ParseTrailer(tr); ok {
		t.Errorf("--no-orca: a load report in the trailer %v", tr)
	}
	if services := listServices(t, off.conn); slices.Contains(services, orcaService) {
		t.Errorf("--no-orca: reflection lists %s", orcaService)
	}
	stream, err = v3orcaservicepb.NewOpenRcaServiceClient(off.conn).StreamCoreMetrics(ctx, &v3orcaservicepb.OrcaLoadReportRequest{})
	if err == nil {
		_, err = stream.Recv()
	}
	if status.Code(err) != codes.Unimplemented {
		t.Errorf("--no-orca: the out-of-band stream answered %v, want UNIMPLEMENTED", err)
	}
	off.Stop(t)
}
