package gateway

import (
	"context"
	"io"
	"net/http"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"

	knowingnodev1 "github.com/knowingnode/knowingnode/gen/knowingnode/v1"
)

// streamPaths are the server-streaming routes of http.yaml. grpc-gateway's
// in-process registration (RegisterXHandlerServer) answers them 501
// ("streaming calls are not yet supported in the in-process transport"), so
// they are served through a client that calls the server in-process.
var streamPaths = map[string]bool{
	"/v1/targets:watch": true,
	"/v1/fanout:stream": true,
	matrixStreamPath:    true,
}

// streams serves streamPaths through its own gateway mux, and the rest
// through next. A stream lives as long as its caller reads it (a watch:
// until the page closes), so the server's write timeout, meant for
// replies, is lifted for it.
func streams(next http.Handler, streamer http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !streamPaths[r.URL.Path] {
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
	s knowingnodev1.FanOutServiceServer
}

func (c fanOutStreams) FanOut(ctx context.Context, req *knowingnodev1.FanOutRequest, _ ...grpc.CallOption) (*knowingnodev1.FanOutResponse, error) {
	return c.s.FanOut(ctx, req)
}

func (c fanOutStreams) ListTargets(ctx context.Context, req *knowingnodev1.ListTargetsRequest, _ ...grpc.CallOption) (*knowingnodev1.ListTargetsResponse, error) {
	return c.s.ListTargets(ctx, req)
}

func (c fanOutStreams) WatchTargets(ctx context.Context, req *knowingnodev1.WatchTargetsRequest, _ ...grpc.CallOption) (grpc.ServerStreamingClient[knowingnodev1.WatchTargetsResponse], error) {
	return startPipe(ctx, func(s grpc.ServerStreamingServer[knowingnodev1.WatchTargetsResponse]) error {
		return c.s.WatchTargets(req, s)
	}), nil
}

func (c fanOutStreams) FanOutStream(ctx context.Context, req *knowingnodev1.FanOutStreamRequest, _ ...grpc.CallOption) (grpc.ServerStreamingClient[knowingnodev1.FanOutStreamResponse], error) {
	return startPipe(ctx, func(s grpc.ServerStreamingServer[knowingnodev1.FanOutStreamResponse]) error {
		return c.s.FanOutStream(req, s)
	}), nil
}

// pipe is both ends of an in-process server stream: serve runs on its own
// goroutine, which ends when serve returns; serve ends when ctx (the HTTP
// request's) does, or when the reader has seen the end (Recv cancels).
type pipe[T any] struct {
	ctx    context.Context
	cancel context.CancelFunc
	msgs   chan *T
	done   chan struct{}
	err    error // serve's return, read after done is closed
}

func startPipe[T any](ctx context.Context, serve func(grpc.ServerStreamingServer[T]) error) *pipe[T] {
	ctx, cancel := context.WithCancel(ctx)
	p := &pipe[T]{ctx: ctx, cancel: cancel, msgs: make(chan *T), done: make(chan struct{})}
	go func() {
		defer close(p.done)
		p.err = serve(serverEnd[T]{p})
	}()
	return p
}

// Recv returns the next message, or serve's error (io.EOF when it returned
// nil). A message sent before done closed is received first: Send blocks
// until it is taken.
func (p *pipe[T]) Recv() (*T, error) {
	select {
	case m := <-p.msgs:
		return m, nil
	case <-p.done:
		p.cancel()
		if p.err == nil {
			return nil, io.EOF
		}
		return nil, p.err
	}
}

func (p *pipe[T]) Header() (metadata.MD, error) { return nil, nil }
func (p *pipe[T]) Trailer() metadata.MD         { return nil }
func (p *pipe[T]) CloseSend() error             { return nil }
func (p *pipe[T]) Context() context.Context     { return p.ctx }
func (p *pipe[T]) SendMsg(any) error            { return nil }
func (p *pipe[T]) RecvMsg(m any) error {
	r, err := p.Recv()
	if err != nil {
		return err
	}
	proto.Reset(m.(proto.Message))
	proto.Merge(m.(proto.Message), any(r).(proto.Message))
	return nil
}

// serverEnd is the pipe as the service sees it.
type serverEnd[T any] struct{ p *pipe[T] }

func (e serverEnd[T]) Send(m *T) error {
	select {
	case e.p.msgs <- m:
		return nil
	case <-e.p.ctx.Done():
		return e.p.ctx.Err()
	}
}
func (e serverEnd[T]) SetHeader(metadata.MD) error  { return nil }
func (e serverEnd[T]) SendHeader(metadata.MD) error { return nil }
func (e serverEnd[T]) SetTrailer(metadata.MD)       {}
func (e serverEnd[T]) Context() context.Context     { return e.p.ctx }
func (e serverEnd[T]) SendMsg(m any) error          { return e.Send(m.(*T)) }
func (e serverEnd[T]) RecvMsg(any) error            { return nil }
