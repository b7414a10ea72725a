package load_test

import (
	"bufio"
	"encoding/json"
	"net/http"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	knowingnodev1 "github.com/knowingnode/knowingnode/gen/knowingnode/v1"
	"github.com/knowingnode/knowingnode/harness/proc"
)

// streamFrontend runs one backend and a frontend over it whose HTTP write
// timeout is 1 s (the binaries' 2 min, made short), with env added.
func streamFrontend(t *testing.T, env ...string) (fe *proc.Process, client knowingnodev1.LoadServiceClient) {
	t.Helper()
	dir := proc.Build(t, "../../backend", "../../frontend")
	be := proc.Start(t, filepath.Join(dir, "backend"), []string{"DRAIN_DELAY=0s", "POD_NAME=backend-0"},
		"--grpc-addr", "127.0.0.1:0", "--admin-addr", "", "--downward-dir", "")
	t.Cleanup(func() { be.Stop(t) })
	fe = proc.Start(t, filepath.Join(dir, "frontend"), append([]string{"POD_NAME=frontend-0", "DRAIN_DELAY=0s"}, env...),
		"--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0", "--downward-dir", "",
		"--target", "b=static:///"+be.Addrs["grpc"], "--http-write-timeout", "1s",
		"--load-max-rate", "100", "--load-max-duration", "1m", "--load-max-concurrent", "2")
	cc, err := grpc.NewClient(fe.Addrs["grpc"], grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return fe, knowingnodev1.NewLoadServiceClient(cc)
}

// restLine is one line of POST /v1/load.
type restLine struct {
	Result struct {
		Window, Summary *struct{ Sent string }
		Cut             string
	}
	Error *struct {
		Code    int
		Message string
	}
}

// postLoad starts a REST load; its lines arrive on the channel, closed at
// the end of the stream.
func postLoad(t *testing.T, fe *proc.Process, body string) <-chan restLine {
	t.Helper()
	resp, err := http.Post("http://"+fe.Addrs["http"]+"/v1/load", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("POST /v1/load: %d", resp.StatusCode)
	}
	lines := make(chan restLine, 1000)
	go func() {
		defer close(lines)
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			var l restLine
			if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
				t.Errorf("not a JSON line: %v: %s", err, sc.Text())
			}
			lines <- l
		}
	}()
	return lines
}

// A REST load three times as long as the HTTP write timeout runs to its
// summary: the timeout is lifted for /v1/load as for the other streams.
// With the timeout applied, the load was cut at 1 s, without a summary.
func TestRESTLoadPastWriteTimeout(t *testing.T) {
	fe, _ := streamFrontend(t)
	var last restLine
	windows := 0
	for l := range postLoad(t, fe, `{"rate":20,"duration":"3s"}`) {
		if l.Result.Window != nil {
			windows++
		}
		last = l
	}
	if last.Result.Summary == nil || last.Result.Cut != "" || windows < 2 {
		t.Fatalf("3 s load, 1 s write timeout: %d windows, last line %+v; want the whole run's summary last", windows, last)
	}
}

// A frontend stopped during loads exits within its drain delay plus a
// second, and does not wait for them (it waited for the shutdown timeout,
// and the caller got a cut stream with no last line): each caller gets the
// summary so far, marked cut, and then UNAVAILABLE saying why.
func TestStopDuringLoad(t *testing.T) {
	const drain = time.Second
	fe, client := streamFrontend(t, "DRAIN_DELAY="+drain.String(), "SHUTDOWN_TIMEOUT=20s")
	rest := postLoad(t, fe, `{"rate":20,"duration":"50s"}`)
	stream, err := client.Run(t.Context(), &knowingnodev1.RunRequest{Rate: 20, Duration: durationpb.New(50 * time.Second)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := stream.Recv(); err != nil { // both loads are running
		t.Fatal(err)
	}
	if l, ok := <-rest; !ok || l.Result.Window == nil {
		t.Fatalf("REST load: first line %+v", l)
	}

	sigterm := time.Now()
	fe.Signal(syscall.SIGTERM)
	var exited time.Duration
	select {
	case <-fe.Exited:
		exited = time.Since(sigterm)
	case <-time.After(15 * time.Second): // less than the shutdown timeout
		t.Fatal("the frontend did not exit within 15 s of SIGTERM")
	}
	t.Logf("exited %v after SIGTERM (drain delay %v)", exited, drain)
	// The bound of the issue is drain + 1 s; a second more of slack for a
	// busy machine, still far below the shutdown timeout the loads held.
	if exited > drain+2*time.Second {
		t.Errorf("exited %v after SIGTERM with a %v drain delay: the loads held it", exited, drain)
	}

	var summary *knowingnodev1.RunResponse
	for {
		m, err := stream.Recv()
		if err != nil {
			if summary == nil || summary.GetCut() == "" || status.Code(err) != codes.Unavailable || !strings.Contains(status.Convert(err).Message(), "shutting down") {
				t.Errorf("gRPC load at the stop: summary %v, end %v; want the summary marked cut, then UNAVAILABLE naming the shutdown", summary, err)
			}
			break
		}
		if m.GetSummary() != nil {
			summary = m
		}
	}

	var got []restLine
	for l := range rest {
		got = append(got, l)
	}
	if n := len(got); n < 2 || got[n-2].Result.Summary == nil || !strings.Contains(got[n-2].Result.Cut, "shutting down") ||
		got[n-1].Error == nil || got[n-1].Error.Code != int(codes.Unavailable) || !strings.Contains(got[n-1].Error.Message, "shutting down") {
		t.Errorf("REST load at the stop: last lines %+v; want the summary marked cut, then an UNAVAILABLE error line saying why", got[max(0, n-2):])
	}
}
