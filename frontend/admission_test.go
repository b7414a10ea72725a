package main

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/knowingnode/knowingnode/harness/proc"
)

// Over the REST API: a fan-out over the admission limit is 429 with
// Retry-After, naming the limit; a cross-site browser request is 403.
func TestRESTAdmission(t *testing.T) {
	dir := proc.Build(t, "../backend", ".")
	slow := startProcess(t, dir, "backend", []string{"POD_NAME=slow"},
		"--grpc-addr", "127.0.0.1:0", "--admin-addr", "", "--downward-dir", "", "--fault-latency", "3s")
	fe := startProcess(t, dir, "frontend", []string{"POD_NAME=frontend-0"},
		"--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0", "--downward-dir", "",
		"--backend-timeout", "5s", "--max-fanouts", "1", "--target", "slow=static:///"+slow.Addrs["grpc"])
	url := "http://" + fe.Addrs["http"] + "/v1/fanout?mode=EACH"
	get := func(header map[string]string) (*http.Response, string) {
		req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, url, nil)
		if err != nil {
			t.Fatal(err)
		}
		for k, v := range header {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp, string(body)
	}

	if resp, body := get(map[string]string{"Sec-Fetch-Site": "cross-site"}); resp.StatusCode != 403 || !strings.Contains(body, "allow-cross-site") {
		t.Errorf("cross-site GET: %d %s; want 403 naming allow-cross-site", resp.StatusCode, body)
	}
	// Five at once: the first admitted waits 3s on the slow backend, holding
	// the limit of one; the others are refused at once.
	type answer struct {
		code             int
		retryAfter, body string
	}
	answers := make(chan answer)
	for range 5 {
		go func() {
			resp, body := get(nil)
			answers <- answer{resp.StatusCode, resp.Header.Get("Retry-After"), body}
		}()
	}
	byCode := map[int]int{}
	for range 5 {
		a := <-answers
		byCode[a.code]++
		if a.code == 429 && (a.retryAfter == "" || !strings.Contains(a.body, "max-fanouts")) {
			t.Errorf("429 with Retry-After %q and body %s; want Retry-After and the limit named", a.retryAfter, a.body)
		}
	}
	t.Logf("5 concurrent fan-outs with max-fanouts=1: %v", byCode)
	if byCode[200] == 0 || byCode[429] == 0 || byCode[200]+byCode[429] != 5 {
		t.Errorf("answers by status %v; want some 200 and the rest 429", byCode)
	}
}
