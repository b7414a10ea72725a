package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	knowingnodev1 "github.com/knowingnode/knowingnode/gen/knowingnode/v1"
	"github.com/knowingnode/knowingnode/harness/clusterdns"
	"github.com/knowingnode/knowingnode/harness/proc"
)

// rawRequest sends request bytes as written, which net/http's client would
// refuse or clean up, and reads the status code.
func rawRequest(t *testing.T, addr, req string) int {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	// The method tells ReadResponse whether a body follows (none for HEAD).
	method, _, _ := strings.Cut(req, " ")
	resp, err := http.ReadResponse(bufio.NewReader(c), &http.Request{Method: method})
	if err != nil {
		t.Fatalf("%q: %v", req, err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// TestJunkRequests throws junk at a real frontend over real backends and a
// real DNS server: wrong methods, bad encodings, huge and negative values,
// unicode, long paths, queries and headers, slow clients. Nothing may be a
// 5xx but the 503 of a target with nothing discovered (and net/http's 505 for
// HTTP/9.9), nothing may panic,
// and the frontend must serve normally afterwards.
func TestJunkRequests(t *testing.T) {
	dir := proc.Build(t, "../backend", ".")
	var addrs []string
	for i := range 2 {
		b := startProcess(t, dir, "backend", []string{fmt.Sprintf("POD_NAME=backend-%d", i), "NODE_NAME=node-a"},
			"--grpc-addr", "127.0.0.1:0", "--admin-addr", "", "--downward-dir", "")
		addrs = append(addrs, b.Addrs["grpc"])
	}
	dns, err := clusterdns.Start("127.0.0.1:0", "cluster.local.")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dns.Close() })
	fe := proc.Start(t, filepath.Join(dir, "frontend"), []string{"POD_NAME=frontend-0", "DRAIN_DELAY=0s"},
		"--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0", "--downward-dir", "",
		"--target", "ok=static:///"+strings.Join(addrs, ","),
		"--target", fmt.Sprintf("empty=dns://%s/nope.ns.svc.cluster.local:9090", dns.Addr()))
	httpAddr := fe.Addrs["http"]

	long := strings.Repeat("a", 8<<10)
	var reqs []string
	for _, m := range []string{"POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD", "TRACE", "CONNECT", "BREW", "get"} {
		for _, p := range []string{"/v1/fanout", "/v1/identity", "/v1/targets", "/hostz", "/", "/metrics", "/openapi.json", "/healthz"} {
			reqs = append(reqs, m+" "+p+" HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
		}
	}
	for _, target := range []string{
		// bad encodings
		"/%FF", "/%C0%AF", "/%ED%A0%80", "/v1/%FF", "/app.js%00", "/..%2F..%2Fetc%2Fpasswd", "//v1//fanout", "/v1/fanout/",
		"/v1/fanout?target=%FF", "/v1/fanout?%FF=1", "/v1/fanout?target=%zz", "/v1/fanout?target=srv;x",
		"/v1/fanout?mode=EACH&target=srv;x", "/v1/fanout?&&&=&=", "/v1/fanout?target", "/v1/fanout?mode=",
		// huge and negative values
		"/v1/fanout?mode=BALANCED&count=-1", "/v1/fanout?mode=BALANCED&count=0", "/v1/fanout?mode=BALANCED&count=2147483648",
		"/v1/fanout?mode=BALANCED&count=99999999999999999999999", "/v1/fanout?timeout=-1s", "/v1/fanout?timeout=0s",
		"/v1/fanout?timeout=9999999h", "/v1/fanout?timeout=1e400s", "/v1/fanout?timeout=NaN", "/v1/fanout?mode=99",
		"/v1/fanout?mode=-1", "/v1/fanout?mode=FAN_OUT_MODE_EACH&mode=EACH",
		// unicode
		"/v1/fanout?target=%C3%BCn%C3%AFc%C3%B8d%C3%A9", "/v1/fanout?target=%E2%80%AE", "/v1/fanout?mode=%EF%BC%A5%EF%BC%A1%EF%BC%A3%EF%BC%A8",
		"/%C3%A9", "/v1/fanout?target=%00",
		// long
		"/" + long, "/v1/" + long, "/v1/fanout?target=" + long, "/v1/fanout?" + strings.Repeat("x=1&", 2000),
		// nothing discovered: the one 5xx allowed
		"/v1/fanout?target=empty", "/v1/fanout?target=empty&mode=BALANCED&count=5",
	} {
		reqs = append(reqs, "GET "+target+" HTTP/1.1\r\nHost: x\r\n\r\n")
	}
	reqs = append(reqs,
		"GET /v1/identity HTTP/1.1\r\nHost: x\r\nX-Big: "+strings.Repeat("b", 70<<10)+"\r\n\r\n",
		"GET /v1/identity HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
		"GET /v1/identity HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
		"POST /v1/fanout HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999\r\n\r\n{",
		"GET /v1/identity HTTP/9.9\r\nHost: x\r\n\r\n",
		"GET /v1/identity\r\n\r\n",
		"\x00\x01\x02 / HTTP/1.1\r\n\r\n",
	)
	statuses := map[int]int{}
	for _, req := range reqs {
		code := rawRequest(t, httpAddr, req)
		statuses[code]++
		line, _, _ := strings.Cut(req, "\r\n")
		nothingDiscovered := code == http.StatusServiceUnavailable && strings.Contains(line, "target=empty")
		// net/http's own answer to a protocol version it does not speak.
		badVersion := code == http.StatusHTTPVersionNotSupported && strings.HasSuffix(line, "HTTP/9.9")
		if code >= 500 && !nothingDiscovered && !badVersion {
			t.Errorf("%.120q: %d", line, code)
		}
	}
	t.Logf("%d junk requests, by status: %v", len(reqs), statuses)

	// gRPC junk: unknown modes, negative and huge values.
	conn, err := grpc.NewClient(fe.Addrs["grpc"], grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fo := knowingnodev1.NewFanOutServiceClient(conn)
	for _, req := range []*knowingnodev1.FanOutRequest{
		{Mode: 99}, {Mode: -7}, {Mode: knowingnodev1.FanOutMode_FAN_OUT_MODE_BALANCED, Count: -1},
		{Mode: knowingnodev1.FanOutMode_FAN_OUT_MODE_BALANCED, Count: 1 << 30}, {Target: "\u202e"}, {Target: long},
	} {
		_, err := fo.FanOut(t.Context(), req)
		if c := status.Code(err); c == codes.Internal || c == codes.Unknown || c == codes.Unavailable {
			t.Errorf("FanOut(%.80v): %v", req, err)
		}
	}

	// A slow client holding a half-sent request neither blocks others nor
	// stays forever.
	slow, err := net.Dial("tcp", httpAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	io.WriteString(slow, "GET /v1/identity HTTP/1.1\r\nHost: x\r\nX-Slow: ")
	if code := rawRequest(t, httpAddr, "GET /v1/identity HTTP/1.1\r\nHost: x\r\n\r\n"); code != 200 {
		t.Errorf("while a slow client waits: %d", code)
	}
	start := time.Now()
	slow.SetReadDeadline(time.Now().Add(60 * time.Second))
	_, err = io.ReadAll(slow)
	t.Logf("slow client cut after %v (%v)", time.Since(start).Round(100*time.Millisecond), err)
	if err != nil {
		t.Errorf("slow client not cut by the server: %v", err)
	}

	// Healthy afterwards, and nothing panicked.
	for _, p := range []string{"/healthz", "/readyz", "/v1/fanout?target=ok"} {
		if code := rawRequest(t, httpAddr, "GET "+p+" HTTP/1.1\r\nHost: x\r\n\r\n"); code != 200 {
			t.Errorf("after the junk, %s: %d", p, code)
		}
	}
	var after fanOutJSON
	getJSON(t, "http://"+httpAddr+"/v1/fanout?target=ok", http.StatusOK, &after)
	if after.Summary.Ok != 2 {
		t.Errorf("after the junk, fan-out: %+v", after.Summary)
	}
	select {
	case <-fe.Exited:
		t.Fatalf("frontend exited:\n%s", fe.Output())
	default:
	}
	if logs := strings.ToLower(fe.Output()); strings.Contains(logs, "panic") || strings.Contains(logs, "goroutine ") {
		t.Errorf("frontend logged a panic:\n%s", fe.Output())
	}
}
