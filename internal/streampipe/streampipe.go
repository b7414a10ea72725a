// Package streampipe calls a gRPC server-streaming handler in-process: the
// handler runs on its own goroutine and sees a grpc.ServerStreamingServer,
// its caller reads a grpc.ServerStreamingClient. The REST gateway serves
// its streams through it (grpc-gateway's in-process registration answers
// streams 501), without a loop back through the process's own gRPC port.
//
// The handler's goroutine is outside both grpc-go's and net/http's panic
// recovery, so the pipe recovers a panic itself: logged with the method and
// its stack, answered INTERNAL, as the gRPC server's interceptors do.
package streampipe

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"runtime/debug"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// Start runs serve on its own goroutine with the server end of a new pipe
// and returns the client end. method (e.g. "/knowingnode.v1.LoadService/Run")
// names the call in the log of a panic; log nil means slog.Default.
//
// serve's goroutine ends when serve returns. serve's context ends with ctx
// (the HTTP request's): a reader that stops early ends ctx to stop the
// handler. Recv returns an error only once serve has returned.
func Start[T any](ctx context.Context, method string, log *slog.Logger, serve func(grpc.ServerStreamingServer[T]) error) grpc.ServerStreamingClient[T] {
	if log == nil {
		log = slog.Default()
	}
	ctx, cancel := context.WithCancel(ctx)
	p := &pipe[T]{ctx: ctx, cancel: cancel, msgs: make(chan *T), done: make(chan struct{})}
	go func() {
		defer close(p.done)
		defer func() {
			if r := recover(); r != nil {
				log.ErrorContext(ctx, "panic in stream handler", "method", method, "panic", r, "stack", string(debug.Stack()))
				p.err = status.Error(codes.Internal, "internal error")
			}
		}()
		p.err = serve(serverEnd[T]{p})
	}()
	return p
}

// pipe is both ends of an in-process server stream.
type pipe[T any] struct {
	ctx    context.Context
	cancel context.CancelFunc
	msgs   chan *T
	done   chan struct{}
	err    error // serve's return, read after done is closed
}

// Recv returns the next message, or serve's error (io.EOF when it returned
// nil). A message sent before done closed is received first: Send blocks
// until it is taken. A bare context error becomes its status (CANCELLED,
// DEADLINE_EXCEEDED), never UNKNOWN.
func (p *pipe[T]) Recv() (*T, error) {
	select {
	case m := <-p.msgs:
		return m, nil
	case <-p.done:
		p.cancel()
		switch _, isStatus := status.FromError(p.err); {
		case p.err == nil:
			return nil, io.EOF
		case !isStatus && (errors.Is(p.err, context.Canceled) || errors.Is(p.err, context.DeadlineExceeded)):
			return nil, status.FromContextError(p.err).Err()
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

// serverEnd is the pipe as the handler sees it.
type serverEnd[T any] struct{ p *pipe[T] }

func (e serverEnd[T]) Send(m *T) error {
	select {
	case e.p.msgs <- m:
		return nil
	case <-e.p.ctx.Done():
		return status.FromContextError(e.p.ctx.Err()).Err()
	}
}
func (e serverEnd[T]) SetHeader(metadata.MD) error  { return nil }
func (e serverEnd[T]) SendHeader(metadata.MD) error { return nil }
func (e serverEnd[T]) SetTrailer(metadata.MD)       {}
func (e serverEnd[T]) Context() context.Context     { return e.p.ctx }
func (e serverEnd[T]) SendMsg(m any) error          { return e.Send(m.(*T)) }
func (e serverEnd[T]) RecvMsg(any) error            { return nil }
