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
)

// The cached client metrics export what go-grpc-middleware's provider does
// for the same calls: names, help, types, labels, counts and buckets (not
// the handling times, which differ).
func TestClientMetricsMatchGRPCProm(t *testing.T) {
	theirs, ours := prometheus.NewRegistry(), prometheus.NewRegistry()
	prov := grpcprom.NewClientMetrics(grpcprom.WithClientHandlingTimeHistogram())
	mine := newClientMetrics()
	theirs.MustRegister(prov)
	ours.MustRegister(mine)
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
	for _, i := range []grpc.UnaryClientInterceptor{prov.UnaryClientInterceptor(), mine.unaryInterceptor()} {
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
