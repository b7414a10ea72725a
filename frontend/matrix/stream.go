package matrix

import (
	"context"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	knowingnodev1 "github.com/knowingnode/knowingnode/gen/knowingnode/v1"
)

// MatrixStream is Matrix, sending each peer round as it is merged and the
// whole matrix last. Same limits and admission.
func (s *Service) MatrixStream(req *knowingnodev1.MatrixStreamRequest, stream grpc.ServerStreamingServer[knowingnodev1.MatrixStreamResponse]) error {
	if s.opts.NoStreaming {
		return status.Error(codes.Unimplemented, "MatrixStream: streaming is turned off on this frontend (its streaming flag is false); call Matrix instead")
	}
	ctx, cancel := context.WithCancel(stream.Context())
	defer cancel()

	// The peers hand their rounds over without waiting for the caller: a
	// slow reader must not hold the fan-outs.
	var (
		mu      sync.Mutex
		pending []*knowingnodev1.MatrixRound
		ready   = make(chan struct{}, 1)
	)
	onRound := func(r *knowingnodev1.MatrixRound) {
		mu.Lock()
		pending = append(pending, r)
		mu.Unlock()
		select {
		case ready <- struct{}{}:
		default:
		}
	}
	type outcome struct {
		resp *knowingnodev1.MatrixResponse
		err  error
	}
	done := make(chan outcome, 1)
	go func() {
		resp, err := s.run(ctx, &knowingnodev1.MatrixRequest{Targets: req.GetTargets(), Calls: req.GetCalls(), Timeout: req.GetTimeout()}, onRound)
		done <- outcome{resp, err}
	}()
	var sendErr error
	flush := func() {
		mu.Lock()
		batch := pending
		pending = nil
		mu.Unlock()
		for _, r := range batch {
			if sendErr != nil {
				return
			}
			if sendErr = stream.Send(&knowingnodev1.MatrixStreamResponse{Event: &knowingnodev1.MatrixStreamResponse_Round{Round: r}}); sendErr != nil {
				cancel() // the caller is gone: stop asking the peers
			}
		}
	}
	for {
		select {
		case <-ready:
			flush()
		case o := <-done: // run has returned: no round is added after this flush
			flush()
			if sendErr != nil {
				return sendErr
			}
			if o.err != nil {
				return o.err
			}
			return stream.Send(&knowingnodev1.MatrixStreamResponse{Event: &knowingnodev1.MatrixStreamResponse_Done{Done: o.resp}})
		}
	}
}
