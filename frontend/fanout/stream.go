package fanout

import (
	"context"
	"reflect"
	"strings"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	knowingnodev1 "github.com/knowingnode/knowingnode/gen/knowingnode/v1"
	"github.com/knowingnode/knowingnode/internal/discovery"
)

// Names of the streaming limits, in errors.
const limitWatchers = "max-watchers"

func (s *Service) streamingOff(rpc string) error {
	if !s.opts.NoStreaming {
		return nil
	}
	return status.Errorf(codes.Unimplemented, "%s: streaming is turned off on this frontend (its streaming flag is false); poll ListTargets and call FanOut instead", rpc)
}

// WatchTargets sends the state of every watched target, then a target's
// state whenever its discovery changes (discovery.Target.Watch), until the
// caller goes, the server stops, or the Service closes.
func (s *Service) WatchTargets(req *knowingnodev1.WatchTargetsRequest, stream grpc.ServerStreamingServer[knowingnodev1.WatchTargetsResponse]) error {
	if err := s.streamingOff("WatchTargets"); err != nil {
		return err
	}
	names := s.names
	if n := req.GetTarget(); n != "" {
		if _, ok := s.targets[n]; !ok {
			return status.Errorf(codes.NotFound, "unknown target %q; configured targets: %s", n, strings.Join(s.names, ", "))
		}
		names = []string{n}
	}
	if s.watchers != nil {
		if !s.watchers.TryAcquire(1) {
			return status.Errorf(codes.ResourceExhausted,
				"too many watchers: %d WatchTargets streams already open, the limit (%s); retry later, or poll ListTargets", s.opts.MaxWatchers, limitWatchers)
		}
		defer s.watchers.Release(1)
	}
	if !s.enter() {
		return status.Error(codes.Unavailable, "frontend shutting down: no new watches")
	}
	defer s.running.Done()

	ctx := stream.Context()
	stopping := s.opts.Stopping
	if stopping == nil {
		stopping = context.Background() // never done
	}
	// The cases of the wait: the ends first, then one per target whose
	// change changes a watched target's message (itself, the targets it is
	// compared with).
	watched := s.related(names)
	const ends = 3
	cases := make([]reflect.SelectCase, ends+len(watched))
	cases[0] = reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(ctx.Done())}
	cases[1] = reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(s.stop.Done())}
	cases[2] = reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(stopping.Done())}
	sent := make(map[string]string, len(names)) // the key of the message last sent
	for initial := true; ; initial = false {
		states := make(map[string]discovery.State, len(watched))
		for i, n := range watched {
			st, changed := s.targets[n].target.Watch()
			states[n] = st
			cases[ends+i] = reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(changed)}
		}
		for _, n := range names {
			ts, key := s.compared(n, states[n])
			if k, ok := sent[n]; ok && k == key {
				continue // neither the target nor what it is compared with changed
			}
			sent[n] = key
			if err := stream.Send(&knowingnodev1.WatchTargetsResponse{Target: ts, Initial: initial, DefaultTarget: s.def}); err != nil {
				return err // the caller is gone
			}
		}
		chosen, _, _ := reflect.Select(cases)
		switch chosen {
		case 0:
			return status.FromContextError(ctx.Err()).Err()
		case 1, 2:
			return status.Error(codes.Unavailable, "frontend shutting down: watch ended; reconnect to another frontend")
		}
	}
}

// FanOutStream is FanOut, sending each EACH result as its call ends, and
// the rest of the response last. It is FanOut itself (fanOutEach), with the
// same admission control and metrics; only the results travel differently.
func (s *Service) FanOutStream(req *knowingnodev1.FanOutStreamRequest, stream grpc.ServerStreamingServer[knowingnodev1.FanOutStreamResponse]) error {
	if err := s.streamingOff("FanOutStream"); err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(stream.Context())
	defer cancel()

	// The calls hand their results over without waiting for the caller:
	// a slow reader must not hold the fan-out's callers.
	var (
		mu      sync.Mutex
		pending []*knowingnodev1.BackendResult
		ready   = make(chan struct{}, 1)
	)
	onResult := func(r *knowingnodev1.BackendResult) {
		mu.Lock()
		pending = append(pending, r)
		mu.Unlock()
		select {
		case ready <- struct{}{}:
		default: // a wake-up is pending already
		}
	}
	type outcome struct {
		resp *knowingnodev1.FanOutResponse
		err  error
	}
	done := make(chan outcome, 1)
	go func() {
		resp, err := s.fanOutEach(ctx, &knowingnodev1.FanOutRequest{
			Target: req.GetTarget(), Mode: req.GetMode(), Count: req.GetCount(), Timeout: req.GetTimeout(),
			Policy: req.GetPolicy(), HashKeys: req.GetHashKeys(),
		}, onResult)
		done <- outcome{resp, err}
	}()

	var sendErr error
	send := func(r *knowingnodev1.BackendResult) {
		if sendErr != nil {
			return
		}
		if sendErr = stream.Send(&knowingnodev1.FanOutStreamResponse{Event: &knowingnodev1.FanOutStreamResponse_Result{Result: r}}); sendErr != nil {
			cancel() // the caller is gone: end the fan-out too
		}
	}
	flush := func() {
		mu.Lock()
		batch := pending
		pending = nil
		mu.Unlock()
		for _, r := range batch {
			send(r)
		}
	}
	for {
		select {
		case <-ready:
			flush()
		case o := <-done: // every call has returned: nothing more is pending after this flush
			flush()
			if sendErr != nil {
				return sendErr
			}
			if o.err != nil {
				return o.err
			}
			return sendLast(stream, o.resp, send, &sendErr)
		}
	}
}

// sendLast ends a FanOutStream: BALANCED's results (groups, known only at
// the end) through send, then the response without its results.
func sendLast(stream grpc.ServerStreamingServer[knowingnodev1.FanOutStreamResponse], resp *knowingnodev1.FanOutResponse, send func(*knowingnodev1.BackendResult), sendErr *error) error {
	if resp.GetMode() == knowingnodev1.FanOutMode_FAN_OUT_MODE_BALANCED {
		for _, r := range resp.GetResults() {
			send(r)
		}
		if *sendErr != nil {
			return *sendErr
		}
	}
	last := &knowingnodev1.FanOutResponse{
		Frontend:  resp.GetFrontend(),
		Target:    resp.GetTarget(),
		Mode:      resp.GetMode(),
		Summary:   resp.GetSummary(),
		Discovery: resp.GetDiscovery(),
		Policy:    resp.GetPolicy(),
	}
	return stream.Send(&knowingnodev1.FanOutStreamResponse{Event: &knowingnodev1.FanOutStreamResponse_Done{Done: last}})
}
