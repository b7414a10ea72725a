package telemetry

import (
	"context"
	"fmt"
	"testing"

	grpcprom "github.com/grpc-ecosystem/go-grpc-middleware/providers/prometheus"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	knowingnodev1 "github.com/knowingnode/knowingnode/gen/knowingnode/v1"
)

// The cached metrics export what go-grpc-middleware's provider does for the
// same calls, client and server side, and for a server's methods at zero:
// names, help, types, labels, counts and buckets (not the handling times,
// which differ).
func TestRPCMetricsMatchGRPCProm(t *testing.T) {
	theirs, ours := prometheus.NewRegistry(), prometheus.NewRegistry()
	prov := grpcprom.NewClientMetrics(grpcprom.WithClientHandlingTimeHistogram())
	provSrv := grpcprom.NewServerMetrics(grpcprom.WithServerHandlingTimeHistogram())
	mine, mineSrv := newRPCMetrics("client"), newRPCMetrics("server")
	theirs.MustRegister(prov, provSrv)
	ours.MustRegister(mine, mineSrv)
	srv := grpc.NewServer()
	knowingnodev1.RegisterIdentityServiceServer(srv, knowingnodev1.UnimplementedIdentityServiceServer{})
	knowingnodev1.RegisterFanOutServiceServer(srv, knowingnodev1.UnimplementedFanOutServiceServer{})
	provSrv.InitializeMetrics(srv)
	mineSrv.initialize(srv)
	calls := []struct {
		method string
		err    error
	}{
		{"/knowingnode.v1.IdentityService/GetIdentity", nil},
		{"/knowingnode.v1.IdentityService/GetIdentity", nil},
		{"/knowingnode.v1.IdentityService/GetIdentity", status.Error(codes.Unavailable, "down")},
		{"/knowingnode.v1.IdentityService/GetIdentity", context.DeadlineExceeded},
		{"/knowingnode.v1.FanOutService/FanOut", status.Error(codes.Code(42), "odd")},
		{"noslash", nil},
	}
	for _, i := range []grpc.UnaryServerInterceptor{provSrv.UnaryServerInterceptor(), mineSrv.unaryServerInterceptor()} {
		for _, c := range calls {
			_, err := i(t.Context(), nil, &grpc.UnaryServerInfo{FullMethod: c.method}, func(context.Context, any) (any, error) {
				return nil, c.err
			})
			if err != c.err {
				t.Fatalf("server interceptor changed the error %v into %v", c.err, err)
			}
		}
	}
	for _, i := range []grpc.UnaryClientInterceptor{prov.UnaryClientInterceptor(), mine.unaryClientInterceptor()} {
		for _, c := range calls {
			err := i(t.Context(), c.method, nil, nil, nil, func(context.Context, string, any, any, *grpc.ClientConn, ...grpc.CallOption) error {
				return c.err
			})
			if err != c.err {
				t.Fatalf("interceptor changed the error %v into %v", c.err, err)
			}
		}
	}
	if a, b := dump(t, theirs), dump(t, ours); a != b {
		t.Errorf("provider's metrics:\n%s\nours:\n%s", a, b)
	}
}

// dump prints every family with its samples, handling times left out.
func dump(t *testing.T, g prometheus.Gatherer) string {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := ""
	for _, mf := range mfs {
		out += fmt.Sprintf("%s %s %q\n", mf.GetName(), mf.GetType(), mf.GetHelp())
		for _, m := range mf.GetMetric() {
			out += fmt.Sprintf("  %v", m.GetLabel())
			if h := m.GetHistogram(); h != nil {
				out += fmt.Sprintf(" count %d buckets", h.GetSampleCount())
				for _, b := range h.GetBucket() {
					out += fmt.Sprintf(" %g", b.GetUpperBound())
				}
			} else {
				out += fmt.Sprintf(" %g", m.GetCounter().GetValue())
			}
			out += "\n"
		}
	}
	return out
}
