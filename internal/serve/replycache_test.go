package serve

import (
	"context"
	"log/slog"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/proto"

	knowingnodev1 "github.com/knowingnode/knowingnode/gen/knowingnode/v1"
	"github.com/knowingnode/knowingnode/internal/identity"
)

func TestCachedReplyIsSentAsEncoded(t *testing.T) {
	cfg := Config{GRPCAddr: "127.0.0.1:0", ShutdownTimeout: 1e9, MaxRecvBytes: 1 << 16, MaxConcurrentStreams: 10}
	srv, err := New(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	id := &knowingnodev1.Identity{PodName: "cached", Labels: map[string]string{"a": "1", "b": "2"},
		Sources: map[string]knowingnodev1.Source{"pod_name": knowingnodev1.Source_SOURCE_DOWNWARD_API}}
	want := proto.Clone(id)
	idSrv := identity.NewServer(id)
	knowingnodev1.RegisterIdentityServiceServer(srv.GRPC, idSrv)
	if err := srv.CacheReply(idSrv.Response()); err != nil {
		t.Fatal(err)
	}
	// Changing the message after caching must not show: the bytes were
	// encoded once. (Nothing may do this in the binaries; here it proves the
	// cache is what answers.)
	id.PodName = "changed"

	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error)
	go func() { done <- srv.Run(ctx) }()
	defer func() { cancel(); <-done }()

	cc, err := grpc.NewClient(srv.GRPCAddr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	for range 3 {
		resp, err := knowingnodev1.NewIdentityServiceClient(cc).GetIdentity(t.Context(), &knowingnodev1.GetIdentityRequest{})
		if err != nil {
			t.Fatal(err)
		}
		if !proto.Equal(resp.GetIdentity(), want) {
			t.Fatalf("got %v, want the identity as cached %v", resp.GetIdentity(), want)
		}
	}
}

// An Encoder registered with EncodeWith encodes the replies it takes (here:
// every GetIdentityResponse, as another identity), and the server encodes
// the others (health) as usual.
func TestEncodeWith(t *testing.T) {
	cfg := Config{GRPCAddr: "127.0.0.1:0", ShutdownTimeout: 1e9, MaxRecvBytes: 1 << 16, MaxConcurrentStreams: 10}
	srv, err := New(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	knowingnodev1.RegisterIdentityServiceServer(srv.GRPC, identity.NewServer(&knowingnodev1.Identity{PodName: "real"}))
	other, err := proto.Marshal(&knowingnodev1.GetIdentityResponse{Identity: &knowingnodev1.Identity{PodName: "encoded"}})
	if err != nil {
		t.Fatal(err)
	}
	srv.EncodeWith(func(v any) (mem.BufferSlice, bool, error) {
		if _, ok := v.(*knowingnodev1.GetIdentityResponse); !ok {
			return nil, false, nil
		}
		return mem.BufferSlice{mem.SliceBuffer(other)}, true, nil
	})
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error)
	go func() { done <- srv.Run(ctx) }()
	defer func() { cancel(); <-done }()
	cc, err := grpc.NewClient(srv.GRPCAddr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	resp, err := knowingnodev1.NewIdentityServiceClient(cc).GetIdentity(t.Context(), &knowingnodev1.GetIdentityRequest{})
	if err != nil || resp.GetIdentity().GetPodName() != "encoded" {
		t.Errorf("GetIdentity: %v %v; want the encoder's reply", resp, err)
	}
	if _, err := healthpb.NewHealthClient(cc).Check(t.Context(), &healthpb.HealthCheckRequest{}); err != nil {
		t.Errorf("health, which the encoder leaves alone: %v", err)
	}
}

// BenchmarkGetIdentity is one GetIdentity over real loopback gRPC, with the
// reply encoded once (as the binaries serve it) and marshaled per call.
func BenchmarkGetIdentity(b *testing.B) {
	for _, cached := range []bool{true, false} {
		b.Run(map[bool]string{true: "encoded-once", false: "marshal-per-call"}[cached], func(b *testing.B) {
			cfg := Config{GRPCAddr: "127.0.0.1:0", ShutdownTimeout: 1e9, MaxRecvBytes: 1 << 16, MaxConcurrentStreams: 1000}
			srv, err := New(cfg, slog.New(slog.DiscardHandler))
			if err != nil {
				b.Fatal(err)
			}
			id := identity.Load(identity.Options{
				Tier: knowingnodev1.Tier_TIER_BACKEND,
				Getenv: func(k string) string {
					return map[string]string{"POD_NAME": "backend-0", "POD_NAMESPACE": "default", "POD_IP": "10.244.0.5",
						"POD_UID": "3f1c9a52-7a41-4d2e-9b1e-0c6f1f2d9a10", "NODE_NAME": "node-a", "NODE_IP": "192.168.1.10",
						"SERVICE_ACCOUNT": "backend", "CPU_LIMIT": "500", "MEMORY_LIMIT": "134217728"}[k]
				},
			})
			idSrv := identity.NewServer(id)
			knowingnodev1.RegisterIdentityServiceServer(srv.GRPC, idSrv)
			if cached {
				if err := srv.CacheReply(idSrv.Response()); err != nil {
					b.Fatal(err)
				}
			}
			ctx, cancel := context.WithCancel(b.Context())
			done := make(chan error)
			go func() { done <- srv.Run(ctx) }()
			defer func() { cancel(); <-done }()
			cc, err := grpc.NewClient(srv.GRPCAddr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
			if err != nil {
				b.Fatal(err)
			}
			defer cc.Close()
			c := knowingnodev1.NewIdentityServiceClient(cc)
			req := &knowingnodev1.GetIdentityRequest{}
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := c.GetIdentity(b.Context(), req); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}
