package load

import (
	"context"

	"google.golang.org/grpc"

	knowingnodev1 "github.com/knowingnode/knowingnode/gen/knowingnode/v1"
	"github.com/knowingnode/knowingnode/internal/streampipe"
)

// Client returns a LoadServiceClient that calls s in-process, for the REST
// gateway: grpc-gateway's in-process registration does not stream, and a
// loop back through our own gRPC port would cost a network hop.
func (s *Service) Client() knowingnodev1.LoadServiceClient { return client{s} }

type client struct{ s *Service }

// Run starts s.Run on its own goroutine (streampipe: a panic there is
// answered INTERNAL), which ends when the run ends or ctx (the HTTP
// request's) is done; the stream carries its messages.
func (c client) Run(ctx context.Context, req *knowingnodev1.RunRequest, _ ...grpc.CallOption) (grpc.ServerStreamingClient[knowingnodev1.RunResponse], error) {
	return streampipe.Start(ctx, knowingnodev1.LoadService_Run_FullMethodName, c.s.log, func(st grpc.ServerStreamingServer[knowingnodev1.RunResponse]) error {
		return c.s.Run(req, st)
	}), nil
}
