package loadreport

import (
	"context"
	"net"
	"testing"
	"time"

	v3orcaservicepb "github.com/cncf/xds/go/xds/service/orca/v3"
	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	knowingnodev1 "github.com/knowingnode/knowingnode/gen/knowingnode/v1"
	"github.com/knowingnode/knowingnode/internal/balancing"
	"github.com/knowingnode/knowingnode/internal/identity"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// failEvery fails every other call, so that a failure rate is reported.
type failEvery struct {
	knowingnodev1.UnimplementedIdentityServiceServer
	n int
}

func (f *failEvery) GetIdentity(context.Context, *knowingnodev1.GetIdentityRequest) (*knowingnodev1.GetIdentityResponse, error) {
	f.n++ // calls are sequential in the test
	if f.n%2 == 0 {
		return nil, status.Error(codes.Unavailable, "injected")
	}
	return &knowingnodev1.GetIdentityResponse{Identity: &knowingnodev1.Identity{PodName: "p"}}, nil
}

func serve(t *testing.T, cfg Config, svc knowingnodev1.IdentityServiceServer) (*Reporter, *grpc.ClientConn, context.CancelFunc) {
	return serveB(t, cfg, svc, false)
}

func serveB(t testing.TB, cfg Config, svc knowingnodev1.IdentityServiceServer, interceptor bool) (*Reporter, *grpc.ClientConn, context.CancelFunc) {
	t.Helper()
	r := New(cfg)
	r.perCallInterceptor = interceptor
	srv := grpc.NewServer(r.ServerOptions()...)
	knowingnodev1.RegisterIdentityServiceServer(srv, svc)
	stopping, stop := context.WithCancel(context.Background())
	if err := r.Register(srv, stopping); err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { srv.Serve(lis); close(done) }()
	cc, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cc.Close()
		stop()
		srv.GracefulStop()
		<-done
		r.Close()
	})
	return r, cc, stop
}

// TestPerCallReport: the trailer carries the claim plus the rate over the
// capacity, the rates of calls and failures, and a CPU utilization that
// moves when the process burns CPU; with EveryCall, on every call.
func TestPerCallReport(t *testing.T) {
	t.Run("every call", func(t *testing.T) { testPerCallReport(t, true) })
	t.Run("new samples", func(t *testing.T) { testPerCallReport(t, false) })
}

func testPerCallReport(t *testing.T, every bool) {
	_, cc, _ := serve(t, Config{Utilization: 0.25, Capacity: 1000, Interval: 20 * time.Millisecond, EveryCall: every}, &failEvery{})
	client := knowingnodev1.NewIdentityServiceClient(cc)
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	burn, stopBurn := context.WithCancel(ctx)
	defer stopBurn()
	go func() {
		for burn.Err() == nil {
		}
	}()
	var rep balancing.Report
	for rep.QPS == 0 || rep.EPS == 0 || rep.CPUUtilization == 0 || rep.ApplicationUtilization == 0.25 {
		var tr metadata.MD
		client.GetIdentity(ctx, &knowingnodev1.GetIdentityRequest{}, grpc.Trailer(&tr))
		if r, ok := balancing.ParseTrailer(tr); ok {
			rep = r
		} else if every {
			t.Fatalf("no report in the trailer %v", tr)
		}
		if ctx.Err() != nil {
			t.Fatalf("last report %+v; want rates, CPU and the claim plus rate/capacity", rep)
		}
		time.Sleep(2 * time.Millisecond)
	}
	stopBurn()
	if want := 0.25 + rep.QPS/1000; rep.ApplicationUtilization < want-1e-9 || rep.ApplicationUtilization > want+1e-9 {
		t.Errorf("application utilization %g, want 0.25 + %g/1000", rep.ApplicationUtilization, rep.QPS)
	}
	if rep.EPS > rep.QPS {
		t.Errorf("failures %g/s above calls %g/s", rep.EPS, rep.QPS)
	}
}

// TestOutOfBand: the stream's first report comes at once, and an open
// stream ends when the server starts stopping instead of holding its
// graceful stop.
func TestOutOfBand(t *testing.T) {
	_, cc, stop := serve(t, Config{Utilization: 0.6, Interval: time.Second}, identity.NewServer(&knowingnodev1.Identity{}))
	stream, err := v3orcaservicepb.NewOpenRcaServiceClient(cc).StreamCoreMetrics(t.Context(), &v3orcaservicepb.OrcaLoadReportRequest{})
	if err != nil {
		t.Fatal(err)
	}
	lr, err := stream.Recv()
	if err != nil || lr.GetApplicationUtilization() != 0.6 {
		t.Fatalf("first report %v, %v; want application utilization 0.6", lr, err)
	}
	stop()
	if _, err := stream.Recv(); status.Code(err) != codes.Unavailable {
		t.Errorf("after the stop began: %v, want UNAVAILABLE", err)
	}
}

// TestOff: no trailer and no service.
func TestOff(t *testing.T) {
	_, cc, _ := serve(t, Config{Off: true, Utilization: 0.6, Interval: time.Second}, identity.NewServer(&knowingnodev1.Identity{}))
	var tr metadata.MD
	if _, err := knowingnodev1.NewIdentityServiceClient(cc).GetIdentity(t.Context(), &knowingnodev1.GetIdentityRequest{}, grpc.Trailer(&tr)); err != nil {
		t.Fatal(err)
	}
	if _, ok := balancing.ParseTrailer(tr); ok {
		t.Errorf("Off: a report in the trailer %v", tr)
	}
	stream, err := v3orcaservicepb.NewOpenRcaServiceClient(cc).StreamCoreMetrics(t.Context(), &v3orcaservicepb.OrcaLoadReportRequest{})
	if err == nil {
		_, err = stream.Recv()
	}
	if status.Code(err) != codes.Unimplemented {
		t.Errorf("Off: the stream answered %v, want UNIMPLEMENTED", err)
	}
}

// TestCallFraction: with 0.1, about a tenth of the calls carry the report
// (binomial, 500 calls: mean 50, sd 6.7; the bounds are 6 sd away).
func TestCallFraction(t *testing.T) {
	_, cc, _ := serve(t, Config{EveryCall: true, CallFraction: 0.1, Utilization: 0.5, Interval: time.Second}, identity.NewServer(&knowingnodev1.Identity{}))
	if reports := reportsOn(t, cc, 500); reports < 10 || reports > 90 {
		t.Errorf("%d of 500 calls carried a report, want about 50", reports)
	}
}

// reportsOn makes n calls on cc and counts those whose trailer carried a
// report.
func reportsOn(t *testing.T, cc *grpc.ClientConn, n int) int {
	t.Helper()
	client := knowingnodev1.NewIdentityServiceClient(cc)
	reports := 0
	for range n {
		var tr metadata.MD
		if _, err := client.GetIdentity(t.Context(), &knowingnodev1.GetIdentityRequest{}, grpc.Trailer(&tr)); err != nil {
			t.Fatal(err)
		}
		if _, ok := balancing.ParseTrailer(tr); ok {
			reports++
		}
	}
	return reports
}

// TestNewSampleOncePerConnection: by default each connection gets each
// sample's report on its first call after it, and no other: two
// connections, 20 calls each, get one report each; after a new sample, one
// more each. (The interval is an hour: the test makes the samples.)
func TestNewSampleOncePerConnection(t *testing.T) {
	r, cc, _ := serve(t, Config{Utilization: 0.5, Interval: time.Hour}, identity.NewServer(&knowingnodev1.Identity{}))
	other, err := grpc.NewClient(cc.Target(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	for sample := range 3 {
		if sample > 0 {
			r.encode()
		}
		for i, c := range []*grpc.ClientConn{cc, other} {
			if got := reportsOn(t, c, 20); got != 1 {
				t.Errorf("sample %d, connection %d: %d of 20 calls carried a report, want the first alone", sample, i, got)
			}
		}
	}
}
