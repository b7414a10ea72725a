package gateway

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc"

	knowingnodev1 "github.com/knowingnode/knowingnode/gen/knowingnode/v1"
	"github.com/knowingnode/knowingnode/internal/streampipe"
)

// registerMatrix registers MatrixService on the unary mux gw and its
// stream on streamer (through an in-process client, as the fan-out's).
func registerMatrix(ctx context.Context, gw, streamer *runtime.ServeMux, s knowingnodev1.MatrixServiceServer, log *slog.Logger) error {
	if s == nil {
		return nil
	}
	if err := knowingnodev1.RegisterMatrixServiceHandlerServer(ctx, gw, s); err != nil {
		return fmt.Errorf("register matrix gateway: %w", err)
	}
	if err := knowingnodev1.RegisterMatrixServiceHandlerClient(ctx, streamer, matrixStreams{s, log}); err != nil {
		return fmt.Errorf("register matrix stream gateway: %w", err)
	}
	return nil
}

// matrixStreams is a MatrixServiceClient calling a MatrixServiceServer in-process.
type matrixStreams struct {
	s   knowingnodev1.MatrixServiceServer
	log *slog.Logger
}

func (c matrixStreams) Matrix(ctx context.Context, req *knowingnodev1.MatrixRequest, _ ...grpc.CallOption) (*knowingnodev1.MatrixResponse, error) {
	return c.s.Matrix(ctx, req)
}

func (c matrixStreams) ListDisagreements(ctx context.Context, req *knowingnodev1.ListDisagreementsRequest, _ ...grpc.CallOption) (*knowingnodev1.ListDisagreementsResponse, error) {
	return c.s.ListDisagreements(ctx, req)
}

func (c matrixStreams) MatrixStream(ctx context.Context, req *knowingnodev1.MatrixStreamRequest, _ ...grpc.CallOption) (grpc.ServerStreamingClient[knowingnodev1.MatrixStreamResponse], error) {
	return streampipe.Start(ctx, knowingnodev1.MatrixService_MatrixStream_FullMethodName, c.log, func(s grpc.ServerStreamingServer[knowingnodev1.MatrixStreamResponse]) error {
		return c.s.MatrixStream(req, s)
	}), nil
}
