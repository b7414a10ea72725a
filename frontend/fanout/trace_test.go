package fanout

import (
	"context"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	knowingnodev1 "github.com/knowingnode/knowingnode/gen/knowingnode/v1"
	"github.com/knowingnode/knowingnode/internal/discovery"
	"github.com/knowingnode/knowingnode/internal/telemetry"
)

// One FanOut over three backends is one trace: the frontend's server span,
// and under it, through propagation over real connections, the server span of
// every backend.
func TestFanOutIsOneTrace(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	defer tp.Shutdown(t.Context())
	tel := func(pod string) *telemetry.Telemetry {
		tt, err := telemetry.New(t.Context(), telemetry.Options{
			Service: "test", Identity: &knowingnodev1.Identity{PodName: pod}, TracerProvider: tp,
		})
		if err != nil {
			t.Fatal(err)
		}
		return tt
	}

	var addrs []string
	for _, pod := range []string{"backend-0", "backend-1", "backend-2"} {
		b := startBackend(t, pod, "node-a", tel(pod).ServerOptions()...)
		addrs = append(addrs, b.addr)
	}
	fe := tel("frontend-0")
	spec, err := discovery.ParseTarget("backends=static:///" + strings.Join(addrs, ","))
	if err != nil {
		t.Fatal(err)
	}
	pool, err := NewPool("backends", time.Second, slog.New(slog.DiscardHandler),
		append([]grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}, fe.DialOptions()...)...)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	target := discovery.NewTarget(spec, discovery.NewResolver(nil), discovery.TargetOptions{Interval: time.Hour, OnUpdate: pool.Update})
	target.Refresh(t.Context())
	svc := New(&knowingnodev1.Identity{PodName: "frontend-0"}, Options{
		BackendTimeout: 2 * time.Second, DefaultTimeout: 5 * time.Second, Concurrency: 8,
		Tracer: fe.Tracer("fanout"),
	})
	defer svc.Close(context.Background())
	if err := svc.Add(target, pool); err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(fe.ServerOptions()...)
	knowingnodev1.RegisterFanOutServiceServer(srv, svc)
	go srv.Serve(lis)
	defer srv.Stop()

	// The caller is not traced: the frontend's server span starts the trace.
	cc, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	if _, err := knowingnodev1.NewFanOutServiceClient(cc).FanOut(t.Context(), &knowingnodev1.FanOutRequest{}); err != nil {
		t.Fatal(err)
	}

	// A server span ends after its reply is sent, so the caller may hold the
	// reply before the span is exported: wait for the three backends' spans
	// and the frontend's (what the test reads), not for luck.
	spans := waitSpans(t, exp, func(spans tracetest.SpanStubs) bool {
		var fe, be int
		for _, s := range spans {
			switch {
			case s.SpanKind == trace.SpanKindServer && strings.HasSuffix(s.Name, "FanOutService/FanOut"):
				fe++
			case s.SpanKind == trace.SpanKindServer && strings.HasSuffix(s.Name, "IdentityService/GetIdentity"):
				be++
			}
		}
		return fe == 1 && be == 3
	})
	byID := map[trace.SpanID]tracetest.SpanStub{}
	traces := map[trace.TraceID]bool{}
	var root tracetest.SpanStub
	var backendServers []tracetest.SpanStub
	for _, s := range spans {
		byID[s.SpanContext.SpanID()] = s
		traces[s.SpanContext.TraceID()] = true
		switch {
		case s.SpanKind == trace.SpanKindServer && strings.HasSuffix(s.Name, "FanOutService/FanOut"):
			root = s
		case s.SpanKind == trace.SpanKindServer && strings.HasSuffix(s.Name, "IdentityService/GetIdentity"):
			backendServers = append(backendServers, s)
		}
	}
	if len(traces) != 1 {
		t.Fatalf("spans belong to %d traces, want 1: %v", len(traces), names(spans))
	}
	if !root.SpanContext.IsValid() {
		t.Fatalf("no frontend server span among %v", names(spans))
	}
	if len(backendServers) != 3 {
		t.Fatalf("%d backend server spans, want 3: %v", len(backendServers), names(spans))
	}
	pods := map[string]bool{}
	for _, s := range backendServers {
		// Walk up the parents: every backend span must descend from the root.
		cur, hops := s, 0
		for cur.SpanContext.SpanID() != root.SpanContext.SpanID() && hops < 10 {
			parent, ok := byID[cur.Parent.SpanID()]
			if !ok {
				t.Fatalf("span %q has parent %s, which was not recorded", cur.Name, cur.Parent.SpanID())
			}
			if parent.Name == "fanout.backend" {
				for _, a := range parent.Attributes {
					if a.Key == "knowingnode.backend.pod" {
						pods[a.Value.AsString()] = true
					}
				}
			}
			cur, hops = parent, hops+1
		}
		if hops == 10 {
			t.Errorf("backend span %s does not descend from the frontend's server span", s.Name)
		}
	}
	if len(pods) != 3 {
		t.Errorf("fanout.backend spans name pods %v, want the 3 backends", pods)
	}
}

// waitSpans returns the exported spans once done says they are complete, or
// what there is after 10s (the test then reports what is missing).
func waitSpans(t *testing.T, exp *tracetest.InMemoryExporter, done func(tracetest.SpanStubs) bool) tracetest.SpanStubs {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		spans := exp.GetSpans()
		if done(spans) || time.Now().After(deadline) {
			return spans
		}
		time.Sleep(time.Millisecond)
	}
}

func names(spans tracetest.SpanStubs) []string {
	var out []string
	for _, s := range spans {
		out = append(out, s.SpanKind.String()+":"+s.Name)
	}
	return out
}
