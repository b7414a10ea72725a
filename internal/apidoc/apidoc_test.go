package apidoc

import (
	"net"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"

	knowingnodev1 "github.com/knowingnode/knowingnode/gen/knowingnode/v1"
)

// TestEmbeddedMatchesGenerated: the embedded set describes exactly the
// knowingnode files the generated Go code registers, comments aside, so a
// proto change that regenerated the Go code but not the set (or the reverse)
// fails here rather than serving stale documentation.
func TestEmbeddedMatchesGenerated(t *testing.T) {
	_ = knowingnodev1.File_knowingnode_v1_identity_proto // registers the generated files
	files, err := Files()
	if err != nil {
		t.Fatal(err)
	}
	var generated int
	protoregistry.GlobalFiles.RangeFiles(func(fd protoreflect.FileDescriptor) bool {
		if !strings.HasPrefix(fd.Path(), "knowingnode/") {
			return true
		}
		generated++
		emb, err := files.FindFileByPath(fd.Path())
		if err != nil {
			t.Errorf("%s is generated but not in gen/descriptor (run make generate)", fd.Path())
			return true
		}
		e := protodesc.ToFileDescriptorProto(emb)
		if e.GetSourceCodeInfo() == nil || len(e.GetSourceCodeInfo().GetLocation()) == 0 {
			t.Errorf("%s: embedded without source info", fd.Path())
		}
		e.SourceCodeInfo = nil
		if g := protodesc.ToFileDescriptorProto(fd); !proto.Equal(e, g) {
			t.Errorf("%s: the embedded descriptor differs from the generated code's (run make generate)", fd.Path())
		}
		return true
	})
	var embedded int
	files.RangeFiles(func(fd protoreflect.FileDescriptor) bool {
		if strings.HasPrefix(fd.Path(), "knowingnode/") {
			embedded++
		}
		return true
	})
	if generated == 0 || embedded != generated {
		t.Errorf("%d knowingnode files generated, %d embedded; want the same, at least one", generated, embedded)
	}
}

// TestReflectionServesComments asks a real server over gRPC reflection, as
// grpcurl does, for the file of a service and finds its proto comments; files
// outside the embedded set (health) are still served.
func TestReflectionServesComments(t *testing.T) {
	srv := grpc.NewServer()
	knowingnodev1.RegisterIdentityServiceServer(srv, knowingnodev1.UnimplementedIdentityServiceServer{})
	healthpb.RegisterHealthServer(srv, health.NewServer())
	if err := Register(srv); err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); srv.Serve(lis) }()
	t.Cleanup(func() { srv.Stop(); <-done })
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	stream, err := reflectionpb.NewServerReflectionClient(conn).ServerReflectionInfo(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer stream.CloseSend()

	files := func(symbol string) map[string]*descriptorpb.FileDescriptorProto {
		t.Helper()
		if err := stream.Send(&reflectionpb.ServerReflectionRequest{
			MessageRequest: &reflectionpb.ServerReflectionRequest_FileContainingSymbol{FileContainingSymbol: symbol},
		}); err != nil {
			t.Fatal(err)
		}
		resp, err := stream.Recv()
		if err != nil {
			t.Fatal(err)
		}
		if e := resp.GetErrorResponse(); e != nil {
			t.Fatalf("%s: reflection error %d %s", symbol, e.GetErrorCode(), e.GetErrorMessage())
		}
		out := map[string]*descriptorpb.FileDescriptorProto{}
		for _, b := range resp.GetFileDescriptorResponse().GetFileDescriptorProto() {
			var fd descriptorpb.FileDescriptorProto
			if err := proto.Unmarshal(b, &fd); err != nil {
				t.Fatal(err)
			}
			out[fd.GetName()] = &fd
		}
		return out
	}

	got := files("knowingnode.v1.IdentityService")
	fd, ok := got["knowingnode/v1/identity.proto"]
	if !ok {
		t.Fatalf("reflection sent %d files, not identity.proto", len(got))
	}
	if _, ok := got["google/protobuf/timestamp.proto"]; !ok {
		t.Errorf("the import google/protobuf/timestamp.proto was not sent with it")
	}
	var comments []string
	for _, l := range fd.GetSourceCodeInfo().GetLocation() {
		comments = append(comments, l.GetLeadingComments())
	}
	all := strings.Join(comments, "\n")
	for _, want := range []string{
		"IdentityService tells who and where the serving process is.",
		"GetIdentity returns the identity of the pod that answers.",
	} {
		if !strings.Contains(all, want) {
			t.Errorf("identity.proto over reflection lacks the comment %q", want)
		}
	}

	if _, ok := files("grpc.health.v1.Health")["grpc/health/v1/health.proto"]; !ok {
		t.Errorf("grpc.health.v1.Health: its file is not served")
	}
}
