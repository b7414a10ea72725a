package load

import (
	"context"
	"io"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"

	knowingnodev1 "github.com/knowingnode/knowingnode/gen/knowingnode/v1"
)

// Client returns a LoadServiceClient that calls s in-process, for the REST
// gateway: grpc-gateway's in-process registration does not stream, and a
// loop back through our own gRPC port would cost a network hop.
func (s *Service) Client() knowingnodev1.LoadServiceClient { return client{s} }

type client struct{ s *Service }

// Run starts s.Run on its own goroutine, which ends when the run ends or ctx
// (the HTTP request's) is done; the stream carries its messages.
func (c client) Run(ctx context.Context, req *knowingnodev1.RunRequest, _ ...grpc.CallOption) (grpc.ServerStreamingClient[knowingnodev1.RunResponse], error) {
	// The run ends with the HTTP request, or when Recv has seen its end.
	ctx, cancel := context.WithCancel(ctx)
	p := &pipe{ctx: ctx, cancel: cancel, msgs: make(chan *knowingnodev1.RunResponse), done: make(chan struct{})}
	go func() {
		defer close(p.done)
		p.err = c.s.Run(req, p.server())
	}()
	return p, nil
}

// pipe is both ends of an in-process server stream.
type pipe struct {
	ctx    context.Context
	cancel context.CancelFunc
	msgs   chan *knowingnodev1.RunResponse
	done   chan struct{}
	err    error // the server's return, read after done is closed
}

// Recv returns the next message, or the server's error (io.EOF when it
// returned nil).
func (p *pipe) Recv() (*knowingnodev1.RunResponse, error) {
	select {
	case m := <-p.msgs:
		return m, nil
	case <-p.done:
		// A message sent before done closed was received above: Send
		// blocks until taken.
		p.cancel()
		if p.err == nil {
			return nil, io.EOF
		}
		return nil, p.err
	}
}

func (p *pipe) Header() (metadata.MD, error) { return nil, nil }
func (p *pipe) Trailer() metadata.MD         { return nil }
func (p *pipe) CloseSend() error             { return nil }
func (p *pipe) Context() context.Context     { return p.ctx }
func (p *pipe) SendMsg(any) error            { return nil }
func (p *pipe) RecvMsg(m any) error {
	r, err := p.Recv()
	if err != nil {
		return err
	}
	proto.Reset(m.(proto.Message))
	proto.Merge(m.(proto.Message), r)
	return nil
}

func (p *pipe) server() grpc.ServerStreamingServer[knowingnodev1.RunResponse] { return serverEnd{p} }

// serverEnd is the pipe as the service sees it.
type serverEnd struct{ p *pipe }

func (e serverEnd) Send(m *knowingnodev1.RunResponse) error {
	select {
	case e.p.msgs <- m:
		return nil
	case <-e.p.ctx.Done():
		return e.p.ctx.Err()
	}
}
func (e serverEnd) SetHeader(metadata.MD) error  { return nil }
func (e serverEnd) SendHeader(metadata.MD) error { return nil }
func (e serverEnd) SetTrailer(metadata.MD)       {}
func (e serverEnd) Context() context.Context     { return e.p.ctx }
func (e serverEnd) SendMsg(m any) error          { return e.Send(m.(*knowingnodev1.RunResponse)) }
func (e serverEnd) RecvMsg(any) error            { return nil }
