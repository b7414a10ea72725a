package serve

import (
	"context"
	"log/slog"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
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
