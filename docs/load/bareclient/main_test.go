package main

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	knowingnodev1 "github.com/knowingnode/knowingnode/gen/knowingnode/v1"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// identity answers GetIdentity, or fails every call with fail when set.
type identity struct {
	knowingnodev1.UnimplementedIdentityServiceServer
	fail error
}

func (s identity) GetIdentity(context.Context, *knowingnodev1.GetIdentityRequest) (*knowingnodev1.GetIdentityResponse, error) {
	if s.fail != nil {
		return nil, s.fail
	}
	return &knowingnodev1.GetIdentityResponse{Identity: &knowingnodev1.Identity{PodName: "backend-0"}}, nil
}

// serve starts a gRPC server with svc and returns a client connection to it.
func serve(t *testing.T, svc identity) *grpc.ClientConn {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	knowingnodev1.RegisterIdentityServiceServer(srv, svc)
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(lis) }()
	cc, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.ForceCodecV2(rawCodec{})))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close(); srv.Stop(); <-done })
	return cc
}

const getIdentity = "/knowingnode.v1.IdentityService/GetIdentity"

func TestRunCountsTheCallsThatReturned(t *testing.T) {
	cc := serve(t, identity{})
	n, err := run(after(200*time.Millisecond), cc, getIdentity, 4)
	if err != nil || n == 0 {
		t.Fatalf("run: %d calls, %v; want some and no error", n, err)
	}
	// The codec took the reply's bytes, undecoded: "backend-0" and its
	// field and message framing.
	var r reply
	if err := cc.Invoke(context.Background(), getIdentity, nil, &r); err != nil || r.n < len("backend-0") {
		t.Errorf("one call: %d bytes, %v", r.n, err)
	}
}

// A failing call ends the run with its error: no figure counts a call that
// was not made.
func TestRunEndsAtTheFirstFailure(t *testing.T) {
	for _, tc := range []struct {
		name   string
		svc    identity
		method string
		want   codes.Code
	}{
		{"the server fails", identity{fail: status.Error(codes.ResourceExhausted, "too many")}, getIdentity, codes.ResourceExhausted},
		{"no such method", identity{}, "/knowingnode.v1.IdentityService/NoSuchMethod", codes.Unimplemented},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cc := serve(t, tc.svc)
			start := time.Now()
			_, err := run(after(time.Minute), cc, tc.method, 4)
			if status.Code(err) != tc.want {
				t.Fatalf("run: %v, want %v", err, tc.want)
			}
			// Every goroutine stops at its first failure, long before stop.
			if d := time.Since(start); d > 30*time.Second {
				t.Errorf("run took %v after the first failure", d)
			}
		})
	}
}

func TestRawCodecRefusesOtherReplies(t *testing.T) {
	var s string
	if err := (rawCodec{}).Unmarshal(nil, &s); err == nil || !strings.Contains(err.Error(), "*string") {
		t.Errorf("Unmarshal into *string: %v, want an error naming the type", err)
	}
}
