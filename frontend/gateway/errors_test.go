package gateway

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	knowingnodev1 "github.com/knowingnode/knowingnode/gen/knowingnode/v1"
	"github.com/knowingnode/knowingnode/internal/streampipe"
)

// failingFanOut fails every call with err, and its streams after one line.
type failingFanOut struct {
	recordingFanOut
	err error
}

func (f *failingFanOut) FanOut(context.Context, *knowingnodev1.FanOutRequest) (*knowingnodev1.FanOutResponse, error) {
	return nil, f.err
}

func (f *failingFanOut) FanOutStream(_ *knowingnodev1.FanOutStreamRequest, s grpc.ServerStreamingServer[knowingnodev1.FanOutStreamResponse]) error {
	s.Send(&knowingnodev1.FanOutStreamResponse{})
	return f.err
}

func (f *failingFanOut) WatchTargets(*knowingnodev1.WatchTargetsRequest, grpc.ServerStreamingServer[knowingnodev1.WatchTargetsResponse]) error {
	return f.err // before its first line
}

// Every REST error has the one shape {"error": {"code", "message"}}: a
// unary call's, a stream's before and after its first line, the checks'
// in front of the gateway, the gateway's own 404; and a request cancelled
// or timed out (a bare context error from the service) is never a 500.
func TestOneErrorShape(t *testing.T) {
	for _, c := range []struct {
		err      error
		wantCode codes.Code
		wantHTTP int
	}{
		{status.Error(codes.NotFound, "unknown target"), codes.NotFound, 404},
		{context.Canceled, codes.Canceled, 499},
		{context.DeadlineExceeded, codes.DeadlineExceeded, 504},
	} {
		h, err := New(t.Context(), Options{Identity: fixedIdentity{}, FanOut: &failingFanOut{err: c.err}})
		if err != nil {
			t.Fatal(err)
		}
		rec := serve(h, http.MethodGet, "/v1/fanout")
		if code, _ := errorJSON(t, rec); rec.Code != c.wantHTTP || codes.Code(code) != c.wantCode {
			t.Errorf("unary failing with %v: %d code %d, want %d code %v", c.err, rec.Code, code, c.wantHTTP, c.wantCode)
		}
		rec = serve(h, http.MethodGet, "/v1/targets:watch")
		if code, _ := errorJSON(t, rec); rec.Code != c.wantHTTP || codes.Code(code) != c.wantCode {
			t.Errorf("stream failing before its first line with %v: %d code %d, want %d code %v", c.err, rec.Code, code, c.wantHTTP, c.wantCode)
		}
		rec = serve(h, http.MethodGet, "/v1/fanout:stream")
		lines := strings.Split(strings.TrimSpace(rec.Body.String()), "\n")
		if code, _ := decodeError(t, []byte(lines[len(lines)-1])); len(lines) != 2 || codes.Code(code) != c.wantCode {
			t.Errorf("stream failing after its first line with %v: %q, want a result then the error", c.err, rec.Body)
		}
	}
	h, _ := newTestHandler(t, nil)
	for _, target := range []string{"/v1/nope", "/v1/fanout?bogus=1", "/v1/fanout:stream?mode=up"} {
		rec := serve(h, http.MethodGet, target)
		if code, msg := errorJSON(t, rec); rec.Code < 400 || code == 0 || msg == "" {
			t.Errorf("%s: %d %s", target, rec.Code, rec.Body)
		}
	}
	if rec := serve(h, http.MethodPost, "/v1/identity"); rec.Code != 405 {
		t.Errorf("POST /v1/identity: %d", rec.Code)
	} else {
		errorJSON(t, rec)
	}
}

// A GET that declares a body it never sends is answered at once, as if it
// had none: the gateway (which drains a GET's body) and net/http (which
// discards it before answering) used to wait for it until the read timeout,
// and then answered 500 "context canceled".
func TestGETWithUnsentBodyAnsweredAtOnce(t *testing.T) {
	h, _ := newTestHandler(t, nil)
	srv := httptest.NewUnstartedServer(h)
	srv.Config.ReadTimeout = 20 * time.Second // the hang the test would see
	srv.Start()
	defer srv.Close()
	for _, path := range []string{"/v1/fanout", "/v1/identity", "/v1/fanout:stream", "/hostz"} {
		conn, err := net.Dial("tcp", srv.Listener.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		conn.SetDeadline(time.Now().Add(10 * time.Second)) // half the read timeout: a hang guard
		io.WriteString(conn, "GET "+path+" HTTP/1.1\r\nHost: fe\r\nContent-Length: 10\r\n\r\n")
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Errorf("GET %s declaring a 10-byte body: %v (still waiting for it?)", path, err)
			conn.Close()
			continue
		}
		body, _ := io.ReadAll(resp.Body)
		conn.Close()
		// recordingFanOut does not stream: 501 there; the rest answer.
		if resp.StatusCode >= 500 && resp.StatusCode != http.StatusNotImplemented {
			t.Errorf("GET %s declaring a body: %d %s", path, resp.StatusCode, body)
		}
	}
}

// slowLoad streams a window every 50 ms for its duration, then the summary.
type slowLoad struct{}

func (slowLoad) Run(ctx context.Context, req *knowingnodev1.RunRequest, _ ...grpc.CallOption) (grpc.ServerStreamingClient[knowingnodev1.RunResponse], error) {
	return streampipe.Start(ctx, "/slow/Run", nil, func(s grpc.ServerStreamingServer[knowingnodev1.RunResponse]) error {
		end := time.Now().Add(req.GetDuration().AsDuration())
		for time.Now().Before(end) {
			if err := s.Send(&knowingnodev1.RunResponse{Result: &knowingnodev1.RunResponse_Window{Window: &knowingnodev1.LoadStats{Sent: 1}}}); err != nil {
				return err
			}
			time.Sleep(50 * time.Millisecond)
		}
		return s.Send(&knowingnodev1.RunResponse{Result: &knowingnodev1.RunResponse_Summary{Summary: &knowingnodev1.LoadStats{Sent: 1}}})
	}), nil
}

// A REST load runs to its summary however long past the server's write
// timeout (2 min in the binaries, 300 ms here) it lasts: /v1/load is a
// stream, its deadline lifted as the other streams' is. It was cut at the
// timeout, with no summary.
func TestLoadOutlivesWriteTimeout(t *testing.T) {
	h, err := New(t.Context(), Options{Identity: fixedIdentity{}, FanOut: &recordingFanOut{}, Load: slowLoad{}})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(h)
	srv.Config.WriteTimeout = 300 * time.Millisecond
	srv.Start()
	defer srv.Close()
	d := durationpb.New(1200 * time.Millisecond) // four write timeouts
	resp, err := http.Post(srv.URL+"/v1/load", "application/json", strings.NewReader(`{"rate":1,"duration":"`+d.AsDuration().String()+`"}`))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	lines := strings.Split(strings.TrimSpace(string(body)), "\n")
	if err != nil || !strings.HasPrefix(lines[len(lines)-1], `{"result":{"summary"`) {
		t.Fatalf("load of %v with a 300ms write timeout: %d lines, last %q, read error %v; want the summary last",
			d.AsDuration(), len(lines), lines[len(lines)-1], err)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/x-ndjson" {
		t.Errorf("load Content-Type %q, want application/x-ndjson like the other streams", ct)
	}
}

// panickyFanOut panics in its stream after one line.
type panickyFanOut struct{ recordingFanOut }

func (*panickyFanOut) FanOutStream(_ *knowingnodev1.FanOutStreamRequest, s grpc.ServerStreamingServer[knowingnodev1.FanOutStreamResponse]) error {
	s.Send(&knowingnodev1.FanOutStreamResponse{})
	var m map[string]int
	m["x"]++ // a runtime panic
	return nil
}

// A panic in a stream served over REST (on the in-process pipe's goroutine,
// outside net/http's recovery: it killed the process) ends that stream with
// an INTERNAL error line, and the log names the method.
func TestRESTStreamPanicIsInternal(t *testing.T) {
	var logs strings.Builder
	h, err := New(t.Context(), Options{Identity: fixedIdentity{}, FanOut: &panickyFanOut{}, Logger: slog.New(slog.NewTextHandler(&lockedWriter{w: &logs}, nil))})
	if err != nil {
		t.Fatal(err)
	}
	rec := serve(h, http.MethodGet, "/v1/fanout:stream")
	lines := strings.Split(strings.TrimSpace(rec.Body.String()), "\n")
	if code, _ := decodeError(t, []byte(lines[len(lines)-1])); len(lines) != 2 || codes.Code(code) != codes.Internal {
		t.Errorf("panicking stream over REST: %q; want a result line, then INTERNAL", rec.Body)
	}
	if !strings.Contains(logs.String(), knowingnodev1.FanOutService_FanOutStream_FullMethodName) {
		t.Errorf("log %q does not name the method", logs.String())
	}
}

type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
