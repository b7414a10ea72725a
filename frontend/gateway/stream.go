package gateway

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"google.golang.org/grpc"

	knowingnodev1 "github.com/knowingnode/knowingnode/gen/knowingnode/v1"
	"github.com/knowingnode/knowingnode/internal/streampipe"
)

// streams serves the server-streaming routes (those the OpenAPI document
// marks so: /v1/targets:watch, /v1/fanout:stream, /v1/load) through
// streamer, and the rest through next. grpc-gateway's in-process
// registration (RegisterXHandlerServer) answers streams 501 ("streaming
// calls are not yet supported in the in-process transport"), so streamer
// calls the services through in-process clients (streampipe).
//
// A stream lives as long as its caller reads it (a watch: until the page
// closes; a load: up to --load-max-duration), so the server's write
// timeout, meant for replies, is lifted for it. Streams end at the stop
// phase of a shutdown instead (their services watch serve.Stopping).
func streams(routes []route, next http.Handler, streamer http.Handler) http.Handler {
	isStream := map[string]bool{}
	for _, rt := range routes {
		if rt.stream {
			isStream[rt.path] = true
		}
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !isStream[r.URL.Path] {
			next.ServeHTTP(w, r)
			return
		}
		// Not every writer (httptest's) has a deadline to lift.
		_ = http.NewResponseController(w).SetWriteDeadline(time.Time{})
		streamer.ServeHTTP(w, r)
	})
}

// ndjson is the gateway's marshaler, naming its streams for what they are:
// newline-delimited JSON, one message a line.
type ndjson struct{ *fixedMarshaler }

// StreamContentType is the Content-Type of a stream that started; an error
// before the first message is answered as plain JSON, with its HTTP status.
func (ndjson) StreamContentType(any) string { return "application/x-ndjson" }

// fanOutStreams is a FanOutServiceClient that calls a FanOutServiceServer
// in-process, streams included; no loop back through our own gRPC port.
type fanOutStreams struct {
	s   knowingnodev1.FanOutServiceServer
	log *slog.Logger
}

func (c fanOutStreams) FanOut(ctx context.Context, req *knowingnodev1.FanOutRequest, _ ...grpc.CallOption) (*knowingnodev1.FanOutResponse, error) {
	return c.s.FanOut(ctx, req)
}

func (c fanOutStreams) ListTargets(ctx context.Context, req *knowingnodev1.ListTargetsRequest, _ ...grpc.CallOption) (*knowingnodev1.ListTargetsResponse, error) {
	return c.s.ListTargets(ctx, req)
}

func (c fanOutStreams) WatchTargets(ctx context.Context, req *knowingnodev1.WatchTargetsRequest, _ ...grpc.CallOption) (grpc.ServerStreamingClient[knowingnodev1.WatchTargetsResponse], error) {
	return streampipe.Start(ctx, knowingnodev1.FanOutService_WatchTargets_FullMethodName, c.log, func(s grpc.ServerStreamingServer[knowingnodev1.WatchTargetsResponse]) error {
		return c.s.WatchTargets(req, s)
	}), nil
}

func (c fanOutStreams) FanOutStream(ctx context.Context, req *knowingnodev1.FanOutStreamRequest, _ ...grpc.CallOption) (grpc.ServerStreamingClient[knowingnodev1.FanOutStreamResponse], error) {
	return streampipe.Start(ctx, knowingnodev1.FanOutService_FanOutStream_FullMethodName, c.log, func(s grpc.ServerStreamingServer[knowingnodev1.FanOutStreamResponse]) error {
		return c.s.FanOutStream(req, s)
	}), nil
}
