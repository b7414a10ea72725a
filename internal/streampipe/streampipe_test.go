package streampipe

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"

	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type msg = wrapperspb.StringValue

func recvAll(s grpc.ServerStreamingClient[msg]) ([]string, error) {
	var got []string
	for {
		m, err := s.Recv()
		if err != nil {
			return got, err
		}
		got = append(got, m.GetValue())
	}
}

func TestMessagesThenEOF(t *testing.T) {
	s := Start(t.Context(), "/t/Ok", nil, func(s grpc.ServerStreamingServer[msg]) error {
		for _, v := range []string{"a", "b", "c"} {
			if err := s.Send(wrapperspb.String(v)); err != nil {
				return err
			}
		}
		return nil
	})
	got, err := recvAll(s)
	if strings.Join(got, "") != "abc" || err != io.EOF {
		t.Fatalf("got %v, %v; want a b c then EOF", got, err)
	}
}

// A panic in the handler is not the process's end: the reader gets
// INTERNAL after the messages sent before it, and the log names the method.
func TestPanicIsRecoveredAsInternal(t *testing.T) {
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	s := Start(t.Context(), "/knowingnode.v1.Test/Boom", log, func(s grpc.ServerStreamingServer[msg]) error {
		s.Send(wrapperspb.String("before"))
		var m map[string]int
		m["x"] = 1 // a real runtime panic: assignment to a nil map
		return nil
	})
	got, err := recvAll(s)
	if len(got) != 1 || status.Code(err) != codes.Internal {
		t.Fatalf("got %v, %v; want one message then INTERNAL", got, err)
	}
	if !strings.Contains(logs.String(), "/knowingnode.v1.Test/Boom") || !strings.Contains(logs.String(), "panic") {
		t.Errorf("log %q does not name the method and the panic", logs.String())
	}
}

// A handler returning its context's bare error is CANCELLED (or
// DEADLINE_EXCEEDED), never UNKNOWN, which REST would answer 500.
func TestContextErrorsBecomeTheirCodes(t *testing.T) {
	for _, c := range []struct {
		err  error
		want codes.Code
	}{{context.Canceled, codes.Canceled}, {context.DeadlineExceeded, codes.DeadlineExceeded}, {errors.New("x"), codes.Unknown}} {
		s := Start(t.Context(), "/t/Ctx", nil, func(grpc.ServerStreamingServer[msg]) error { return c.err })
		if _, err := recvAll(s); status.Code(err) != c.want {
			t.Errorf("handler returned %v: reader got %v, want %v", c.err, err, c.want)
		}
	}
}

// The handler's context ends with the caller's, and its Send fails then.
func TestCallerGoneStopsHandler(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	sendErr := make(chan error, 1)
	s := Start(ctx, "/t/Gone", nil, func(s grpc.ServerStreamingServer[msg]) error {
		s.Send(wrapperspb.String("first"))
		<-s.Context().Done()
		err := s.Send(wrapperspb.String("after"))
		sendErr <- err
		return err
	})
	if m, err := s.Recv(); err != nil || m.GetValue() != "first" {
		t.Fatalf("first Recv: %v %v", m, err)
	}
	cancel()
	if err := <-sendErr; status.Code(err) != codes.Canceled {
		t.Errorf("Send after the caller left: %v, want CANCELLED", err)
	}
	if _, err := s.Recv(); status.Code(err) != codes.Canceled {
		t.Errorf("Recv after the caller left: %v, want CANCELLED", err)
	}
}
