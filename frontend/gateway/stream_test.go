package gateway

import (
	"bufio"
	"context"
	"encoding/json"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/knowingnode/knowingnode/frontend/fanout"
	knowingnodev1 "github.com/knowingnode/knowingnode/gen/knowingnode/v1"
	"github.com/knowingnode/knowingnode/harness/clusterdns"
	"github.com/knowingnode/knowingnode/internal/discovery"
	"github.com/knowingnode/knowingnode/internal/identity"
)

// streamFrontend is the frontend's fan-out service and HTTP face over one
// target, served by a real HTTP server whose write timeout is short.
func streamFrontend(t *testing.T, spec string, o fanout.Options) (*discovery.Target, *httptest.Server) {
	t.Helper()
	sp, err := discovery.ParseTarget(spec)
	if err != nil {
		t.Fatal(err)
	}
	pool, err := fanout.NewPool(sp.Name, time.Second, slog.New(slog.DiscardHandler), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	target := discovery.NewTarget(sp, discovery.NewResolver(discovery.NetLookuper(sp.Server)), discovery.TargetOptions{Interval: time.Hour, OnUpdate: pool.Update})
	target.Refresh(t.Context())
	o.BackendTimeout, o.DefaultTimeout, o.Concurrency = 2*time.Second, 5*time.Second, 8
	fan := fanout.New(&knowingnodev1.Identity{PodName: "frontend-0"}, o)
	t.Cleanup(func() { fan.Close(context.Background()) })
	if err := fan.Add(target, pool); err != nil {
		t.Fatal(err)
	}
	h, err := New(t.Context(), Options{Identity: fixedIdentity{}, FanOut: fan})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(h)
	srv.Config.WriteTimeout = 300 * time.Millisecond
	srv.Start()
	t.Cleanup(srv.Close)
	return target, srv
}

// lines reads a stream's NDJSON lines.
type lines struct {
	t    *testing.T
	resp *http.Response
	sc   *bufio.Scanner
}

func getStream(t *testing.T, ctx context.Context, url string) *lines {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return &lines{t: t, resp: resp, sc: bufio.NewScanner(resp.Body)}
}

// next decodes the next line's "result" into m.
func (l *lines) next(m any) {
	l.t.Helper()
	if !l.sc.Scan() {
		l.t.Fatalf("stream ended: %v", l.sc.Err())
	}
	var line struct {
		Result json.RawMessage
		Error  json.RawMessage
	}
	if err := json.Unmarshal(l.sc.Bytes(), &line); err != nil || line.Result == nil {
		l.t.Fatalf("line %s: %v; want a result", l.sc.Bytes(), err)
	}
	if err := json.Unmarshal(line.Result, m); err != nil {
		l.t.Fatal(err)
	}
}

type watchLine struct {
	Target struct {
		Name      string
		Endpoints []struct{ Address string }
		LastError string
	}
	Initial bool
}

// TestWatchTargetsOverHTTP: a real HTTP client reads the watch line by line
// while a real DNS server's answer changes; each change arrives as its own
// line, flushed at once, even after the server's write timeout.
func TestWatchTargetsOverHTTP(t *testing.T) {
	dns, err := clusterdns.Start("127.0.0.1:0", "cluster.local.")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dns.Close() })
	setPods := func(n int) {
		if err := dns.SetService(clusterdns.Service{Namespace: "ns", Name: "web", ClusterIP: "None", Endpoints: clusterdns.Pods("web", n)}); err != nil {
			t.Fatal(err)
		}
	}
	setPods(2)
	target, srv := streamFrontend(t, "web=dns://"+dns.Addr()+"/web.ns.svc.cluster.local:9090", fanout.Options{})
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	l := getStream(t, ctx, srv.URL+"/v1/targets:watch")
	if l.resp.StatusCode != 200 || l.resp.Header.Get("Content-Type") != "application/x-ndjson" {
		t.Fatalf("status %d, Content-Type %q; want 200 application/x-ndjson", l.resp.StatusCode, l.resp.Header.Get("Content-Type"))
	}
	var m watchLine
	l.next(&m)
	if !m.Initial || m.Target.Name != "web" || len(m.Target.Endpoints) != 2 {
		t.Fatalf("first line %+v; want web's 2 endpoints, initial", m)
	}
	// Past the server's write timeout: a watch outlives it.
	time.Sleep(400 * time.Millisecond)
	for _, n := range []int{3, 1} {
		setPods(n)
		start := time.Now()
		target.Refresh(t.Context())
		m = watchLine{}
		l.next(&m)
		if m.Initial || len(m.Target.Endpoints) != n {
			t.Fatalf("after scaling to %d: %+v", n, m)
		}
		t.Logf("scaled to %d: the line arrived %v after the refresh began (DNS query included)", n, time.Since(start).Round(10*time.Microsecond))
	}
}

// heldBackend serves an identity, holding each call until release closes.
func heldBackend(t *testing.T, pod string, release <-chan struct{}) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(grpc.UnaryInterceptor(func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		select {
		case <-release:
		case <-ctx.Done():
		}
		return h(ctx, req)
	}))
	knowingnodev1.RegisterIdentityServiceServer(srv, identity.NewServer(&knowingnodev1.Identity{PodName: pod}))
	go srv.Serve(lis)
	t.Cleanup(srv.Stop)
	return lis.Addr().String()
}

func TestFanOutStreamOverHTTP(t *testing.T) {
	open, held := make(chan struct{}), make(chan struct{})
	close(open)
	_, srv := streamFrontend(t, "b=static:///"+heldBackend(t, "quick", open)+","+heldBackend(t, "slow", held), fanout.Options{})
	l := getStream(t, t.Context(), srv.URL+"/v1/fanout:stream?mode=each")
	type streamLine struct {
		Result *struct {
			Code     string
			Identity struct{ PodName string }
		}
		Done *struct {
			Summary struct{ Total, Ok int }
		}
	}
	// The quick backend's line comes while the slow one still holds its call.
	var m streamLine
	l.next(&m)
	if m.Result == nil || m.Result.Identity.PodName != "quick" {
		t.Fatalf("first line %+v; want the quick backend's result", m)
	}
	close(held)
	m = streamLine{}
	l.next(&m)
	if m.Result == nil || m.Result.Identity.PodName != "slow" {
		t.Fatalf("second line %+v; want the slow backend's result", m)
	}
	m = streamLine{}
	l.next(&m)
	if m.Done == nil || m.Done.Summary.Total != 2 || m.Done.Summary.Ok != 2 {
		t.Fatalf("last line %+v; want the summary of 2 OK", m)
	}
	if l.sc.Scan() {
		t.Errorf("a line after the summary: %s", l.sc.Bytes())
	}
}

// TestStreamsRefused: errors before the first message keep their HTTP
// status, which is what the page tells apart to fall back to polling.
func TestStreamsRefused(t *testing.T) {
	_, off := streamFrontend(t, "b=static:///127.0.0.1:1", fanout.Options{NoStreaming: true})
	_, on := streamFrontend(t, "b=static:///127.0.0.1:1", fanout.Options{})
	for _, c := range []struct {
		url    string
		status int
		msg    string
	}{
		{off.URL + "/v1/targets:watch", 501, "streaming is turned off"},
		{off.URL + "/v1/fanout:stream", 501, "streaming is turned off"},
		{on.URL + "/v1/targets:watch?target=nope", 404, `unknown target \"nope\"`},
		{on.URL + "/v1/fanout:stream?count=-1", 400, "count -1 is out of range"},
		{on.URL + "/v1/fanout:stream?bogus=1", 400, `unknown parameter \"bogus\"`},
	} {
		resp, err := http.Get(c.url)
		if err != nil {
			t.Fatal(err)
		}
		var b strings.Builder
		bufio.NewReader(resp.Body).WriteTo(&b)
		resp.Body.Close()
		if resp.StatusCode != c.status || !strings.Contains(b.String(), c.msg) {
			t.Errorf("GET %s: %d %s; want %d and %q", c.url, resp.StatusCode, b.String(), c.status, c.msg)
		}
	}
}
