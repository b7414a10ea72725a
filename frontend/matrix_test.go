package main

import (
	"bufio"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/knowingnode/knowingnode/harness/proc"
)

type matrixJSON struct {
	Rows    []struct{ Key, NodeName, Error string }
	Columns []struct{ Key, NodeName string }
	Paths   []struct {
		Target string
		Cells  []struct {
			Row, Column, Code string
			Calls, Ok         int
			LatencyP50        string
		}
		Summary struct{ Line string }
	}
}

// Two frontend processes, the second told of the first as its peer: a
// 2 x 2 matrix over REST, its stream, and a matrix past max-matrix-calls
// refused with 429 naming the limit.
func TestRESTMatrix(t *testing.T) {
	dir := proc.Build(t, "../backend", ".")
	var backends []string
	for i, node := range []string{"node-a", "node-b"} {
		b := startProcess(t, dir, "backend", []string{"POD_NAME=backend-" + string(rune('0'+i)), "NODE_NAME=" + node},
			"--grpc-addr", "127.0.0.1:0", "--admin-addr", "", "--downward-dir", "")
		backends = append(backends, b.Addrs["grpc"])
	}
	target := "be=static:///" + strings.Join(backends, ",")
	fe0 := startProcess(t, dir, "frontend", []string{"POD_NAME=frontend-0", "NODE_NAME=node-a"},
		"--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0", "--downward-dir", "", "--target", target)
	fe1 := startProcess(t, dir, "frontend", []string{"POD_NAME=frontend-1", "NODE_NAME=node-b"},
		"--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0", "--downward-dir", "", "--target", target,
		"--peers", "static:///"+fe0.Addrs["grpc"], "--max-matrix-calls", "12")
	base := "http://" + fe1.Addrs["http"]

	var m matrixJSON
	getJSON(t, base+"/v1/matrix?calls=3", http.StatusOK, &m)
	if len(m.Rows) != 2 || len(m.Columns) != 2 || len(m.Paths) != 1 || len(m.Paths[0].Cells) != 4 {
		t.Fatalf("matrix %+v; want 2 rows x 2 columns", m)
	}
	for _, c := range m.Paths[0].Cells {
		if c.Code != "OK" || c.Calls != 3 || c.Ok != 3 || c.LatencyP50 == "" {
			t.Errorf("cell %+v; want 3 calls OK with a p50", c)
		}
	}
	if m.Rows[0].Key != "frontend-0" || m.Rows[1].Key != "frontend-1" {
		t.Errorf("rows %+v; want frontend-0 (node-a), frontend-1 (node-b)", m.Rows)
	}
	t.Logf("summary: %s", m.Paths[0].Summary.Line)

	// 2 rows x 2 columns x 4 calls = 16 > 12.
	resp, err := http.Get(base + "/v1/matrix?calls=4")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" ||
		!strings.Contains(string(body), "max-matrix-calls") || !strings.Contains(string(body), "16 backend calls") {
		t.Errorf("over the limit: %d (Retry-After %q) %s; want 429 naming max-matrix-calls and the cost", resp.StatusCode, resp.Header.Get("Retry-After"), body)
	}
	resp, err = http.Get(base + "/v1/matrix?calls=1000")
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), "1..100") {
		t.Errorf("calls=1000: %d %s; want 400 naming 1..100", resp.StatusCode, body)
	}

	// The stream: a round per frontend, then the whole matrix.
	resp, err = http.Get(base + "/v1/matrix:stream?calls=1")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var rounds, done int
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var line struct {
			Result struct {
				Round *struct{ Row struct{ Key string } }
				Done  *matrixJSON
			}
			Error *json.RawMessage
		}
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			t.Fatalf("%v in %s", err, sc.Bytes())
		}
		switch {
		case line.Error != nil:
			t.Fatalf("stream error %s", *line.Error)
		case line.Result.Round != nil:
			rounds++
		case line.Result.Done != nil:
			done++
			if len(line.Result.Done.Rows) != 2 {
				t.Errorf("done: %+v", line.Result.Done)
			}
		}
	}
	if rounds != 2 || done != 1 || resp.Header.Get("Content-Type") != "application/x-ndjson" {
		t.Errorf("stream: %d rounds, %d done, %s; want 2, 1, ndjson", rounds, done, resp.Header.Get("Content-Type"))
	}

	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, base+"/v1/matrix", nil)
	req.Header.Set("Sec-Fetch-Site", "cross-site")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("cross-site matrix: %d, want 403", resp.StatusCode)
	}
}

// A matrix counts against the fan-out limits of the frontend that makes
// its row: with max-fanouts=1 and a slow backend, of matrices asked at once
// one runs and the others are refused with 429 naming max-fanouts.
func TestRESTMatrixAdmission(t *testing.T) {
	dir := proc.Build(t, "../backend", ".")
	slow := startProcess(t, dir, "backend", []string{"POD_NAME=slow"},
		"--grpc-addr", "127.0.0.1:0", "--admin-addr", "", "--downward-dir", "", "--fault-latency", "3s")
	fe := startProcess(t, dir, "frontend", []string{"POD_NAME=frontend-0"},
		"--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0", "--downward-dir", "",
		"--backend-timeout", "5s", "--max-fanouts", "1", "--max-matrices", "10", "--target", "slow=static:///"+slow.Addrs["grpc"])
	type answer struct {
		code int
		body string
	}
	answers := make(chan answer)
	for range 4 {
		go func() {
			resp, err := http.Get("http://" + fe.Addrs["http"] + "/v1/matrix?calls=1")
			if err != nil {
				answers <- answer{0, err.Error()}
				return
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			answers <- answer{resp.StatusCode, string(body)}
		}()
	}
	byCode := map[int]int{}
	for range 4 {
		a := <-answers
		byCode[a.code]++
		if a.code == 429 && !strings.Contains(a.body, "max-fanouts") {
			t.Errorf("429 %s; want the limit named", a.body)
		}
	}
	t.Logf("4 concurrent matrices with max-fanouts=1: %v", byCode)
	if byCode[200] == 0 || byCode[429] == 0 || byCode[200]+byCode[429] != 4 {
		t.Errorf("answers by status %v; want some 200 and the rest 429", byCode)
	}
}
