package web

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/knowingnode/knowingnode/harness/browser"
)

// TestBrowserMatrix: the matrix page paints each round as the stream brings
// it (live, before the whole matrix), colours cells by p50 and marks the
// failed path with its code, collapses by node and by zone, lists the DNS
// against EndpointSlice disagreements, and in live mode runs again by
// itself. A fake API stands in for the frontend, so the stream can be held
// between rounds.
func TestBrowserMatrix(t *testing.T) {
	browser.Path(t, false)
	const hostile = `<img src=x onerror="window.pwned=1">`
	pod := func(key, node, zone string) map[string]any {
		return map[string]any{"key": key, "podName": key, "nodeName": node, "zone": zone}
	}
	cell := func(row, col, code string, calls, ok int, p50 string) map[string]any {
		c := map[string]any{"row": row, "column": col, "code": code, "calls": calls, "byCode": map[string]int{code: calls}}
		if ok > 0 {
			c["ok"], c["latencyP50"], c["latencyP99"] = ok, p50, p50
			c["byCode"] = map[string]int{"OK": ok}
			if ok < calls {
				c["byCode"] = map[string]int{"OK": ok, code: calls - ok}
			}
		}
		return c
	}
	feA, feB := pod("fe-a", "node-a", "zone-1"), pod("fe-b", "node-b", "zone-2")
	feB["error"] = hostile
	cols := []map[string]any{pod("be-0", "node-a", "zone-1"), pod("be-1", "node-b", "zone-2"), pod("be-2", "node-b", "zone-2")}
	rowA := []map[string]any{cell("fe-a", "be-0", "OK", 3, 3, "0.000300s"), cell("fe-a", "be-1", "OK", 3, 3, "0.003000s"), cell("fe-a", "be-2", "OK", 3, 3, "0.002500s")}
	rowB := []map[string]any{cell("fe-b", "be-0", "OK", 3, 3, "0.004000s"), cell("fe-b", "be-1", "OK", 3, 3, "0.000400s"), cell("fe-b", "be-2", "UNAVAILABLE", 3, 0, "")}
	done := map[string]any{
		"rows": []any{feA, feB}, "columns": cols, "calls": 3,
		"paths": []any{map[string]any{
			"target": "pods", "mode": "DISCOVERY_MODE_DNS",
			"cells": append(append([]map[string]any{}, rowA...), rowB...),
			"nodeCells": []any{
				cell("node-a", "node-a", "OK", 3, 3, "0.000300s"), cell("node-a", "node-b", "OK", 6, 6, "0.002800s"),
				cell("node-b", "node-a", "OK", 3, 3, "0.004000s"), cell("node-b", "node-b", "UNAVAILABLE", 6, 3, "0.000400s"),
			},
			"zoneCells": []any{cell("zone-1", "zone-1", "OK", 3, 3, "0.000300s"), cell("zone-1", "zone-2", "OK", 6, 6, "0.002800s"),
				cell("zone-2", "zone-1", "OK", 3, 3, "0.004000s"), cell("zone-2", "zone-2", "UNAVAILABLE", 6, 3, "0.000400s")},
			"summary": map[string]any{"line": "same-node p50 0.35ms (6 ok, 3 failed); cross-zone p50 3.5ms (12 ok, 0 failed)"},
		}},
	}
	line := func(w http.ResponseWriter, v any) {
		b, _ := json.Marshal(map[string]any{"result": v})
		w.Write(append(b, '\n'))
		w.(http.Flusher).Flush()
	}
	var (
		streams atomic.Int32
		release = make(chan struct{})
		once    sync.Once
	)
	defer once.Do(func() { close(release) })
	mux := http.NewServeMux()
	mux.Handle("/", Handler())
	mux.HandleFunc("GET /v1/targets", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `{"targets":[{"name":"pods"},{"name":"vip"}],"defaultTarget":"pods"}`)
	})
	mux.HandleFunc("GET /v1/disagreements", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `{"limit":100,"disagreements":[
			{"target":"dns","other":"api","start":"2026-12-04T10:00:30Z","duration":"4s","summary":"DNS: 2 addresses; API: 3 endpoints"},
			{"target":"dns","other":"api","start":"2026-12-04T10:00:00Z","end":"2026-12-04T10:00:31Z","duration":"31s","summary":"only in DNS: 10.244.0.9"}]}`)
	})
	mux.HandleFunc("GET /v1/matrix:stream", func(w http.ResponseWriter, r *http.Request) {
		if got := r.URL.Query()["targets"]; len(got) != 1 || got[0] != "pods" || r.URL.Query().Get("calls") != "3" {
			http.Error(w, `{"code":3,"message":"unexpected query"}`, http.StatusBadRequest)
			return
		}
		n := streams.Add(1)
		w.Header().Set("Content-Type", "application/x-ndjson")
		line(w, map[string]any{"round": map[string]any{"target": "pods", "row": feA, "columns": cols, "cells": rowA, "round": 3}})
		if n == 1 {
			select { // hold the first stream after fe-a's round
			case <-release:
			case <-r.Context().Done():
				return
			}
		}
		line(w, map[string]any{"round": map[string]any{"target": "pods", "row": feB, "columns": cols, "cells": rowB, "round": 3}})
		line(w, map[string]any{"done": done})
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()

	br := browser.New(t, false, 5*time.Minute)
	ctx := br.Ctx
	do(t, ctx, "open the matrix page, live", chromedp.EmulateViewport(1280, 900), chromedp.Navigate(srv.URL+"/matrix.html?live=1"))
	cellSel := func(row, col string) string {
		return fmt.Sprintf(`document.querySelector("[data-testid=mx-cell][data-row='%s'][data-col='%s']")`, row, col)
	}
	// Live: fe-a's round is painted while the stream is still open.
	waitFor(t, ctx, "fe-a's round", cellSel("fe-a", "be-0")+`?.dataset.code === "OK"`)
	if g := evalString(t, ctx, `document.getElementById("mx-result").dataset.generation`); g != "0" {
		t.Errorf("generation %s before the whole matrix came, want 0", g)
	}
	if n := evalString(t, ctx, `String(document.querySelectorAll("[data-testid=mx-row]").length)`); n != "1" {
		t.Errorf("%s rows after one round, want 1", n)
	}
	once.Do(func() { close(release) })
	waitFor(t, ctx, "the whole matrix", `Number(document.getElementById("mx-result").dataset.generation) >= 1`)

	if s := evalString(t, ctx, cellSel("fe-b", "be-2")+`.className + " " + `+cellSel("fe-b", "be-2")+`.textContent`); s != "mx-fail UNAVAILABLE" {
		t.Errorf("the failed path: %q, want marked mx-fail with its code", s)
	}
	failed := evalString(t, ctx, `String(document.querySelectorAll("td.mx-fail").length)`)
	ok := evalString(t, ctx, `String(document.querySelectorAll("[data-testid=mx-cell][data-code=OK]").length)`)
	if failed != "1" || ok != "5" {
		t.Errorf("%s failed and %s OK cells, want exactly 1 and 5", failed, ok)
	}
	// Colour: the fastest cell green, the slowest red.
	rgb := func(sel string) (r, g int) {
		s := evalString(t, ctx, sel+`.style.backgroundColor`)
		var b int
		if _, err := fmt.Sscanf(s, "rgb(%d, %d, %d)", &r, &g, &b); err != nil {
			t.Fatalf("colour %q: %v", s, err)
		}
		return r, g
	}
	if r, g := rgb(cellSel("fe-a", "be-0")); g <= r {
		t.Errorf("fastest cell rgb r=%d g=%d, want green", r, g)
	}
	if r, g := rgb(cellSel("fe-b", "be-0")); r <= g {
		t.Errorf("slowest cell rgb r=%d g=%d, want red", r, g)
	}
	if s := evalString(t, ctx, `document.querySelector("[data-testid=mx-summary]").textContent`); !strings.HasPrefix(s, "same-node p50") {
		t.Errorf("summary %q", s)
	}
	if s := evalString(t, ctx, `document.querySelector("[data-testid=mx-row-error]")?.textContent || ""`); !strings.Contains(s, hostile) {
		t.Errorf("row error %q, want the text %q", s, hostile)
	}
	if injected := evalString(t, ctx, `String(window.pwned === 1 || document.querySelector("#mx-paths img") !== null)`); injected != "false" {
		t.Error("a name from the cluster became markup")
	}
	// The page asks for the disagreements once a matrix has come: wait for
	// that answer rather than race it.
	waitFor(t, ctx, "the disagreements", `document.querySelectorAll("[data-testid=mx-disagreement]").length >= 2`)
	if n := evalString(t, ctx, `String(document.querySelectorAll("[data-testid=mx-disagreement]").length) + "/" + String(document.querySelectorAll("[data-testid=mx-disagreement][data-open=true]").length)`); n != "2/1" {
		t.Errorf("disagreements shown/open %s, want 2/1", n)
	}
	if shot := os.Getenv("KNOWINGNODE_MATRIX_SCREENSHOT"); shot != "" {
		screenshot(t, ctx, shot, "matrix.png")
	}

	// Collapse by node, then by zone: the server's merged cells.
	do(t, ctx, "collapse by node", chromedp.Click(chromedp.CSS(`[data-testid=mx-view-nodes]`)))
	waitFor(t, ctx, "the node view", `document.querySelector("[data-testid=mx-table]").dataset.view === "nodes"`)
	if s := evalString(t, ctx, cellSel("node-b", "node-b")+`.className + " " + `+cellSel("node-b", "node-b")+`.dataset.code`); s != "mx-partial UNAVAILABLE" {
		t.Errorf("node-b -> node-b: %q, want coloured and marked partial UNAVAILABLE", s)
	}
	if n := evalString(t, ctx, `String(document.querySelectorAll("[data-testid=mx-cell]").length)`); n != "4" {
		t.Errorf("%s node cells, want 2 x 2", n)
	}
	do(t, ctx, "collapse by zone", chromedp.Click(chromedp.CSS(`[data-testid=mx-view-zones]`)))
	waitFor(t, ctx, "the zone view", cellSel("zone-1", "zone-2")+`?.dataset.code === "OK"`)
	if !strings.Contains(evalString(t, ctx, `location.search`), "view=zones") {
		t.Error("the view is not in the URL")
	}

	// Live: the page asks again by itself, 5 s after the last matrix.
	waitFor(t, ctx, "a second matrix, live", `Number(document.getElementById("mx-result").dataset.generation) >= 2`)
	if streams.Load() < 2 {
		t.Errorf("%d streams, want a second one from live mode", streams.Load())
	}
	for _, m := range br.Console() {
		if m.IsException() || strings.Contains(m.Text, "Content Security Policy") {
			t.Errorf("browser console: %s", m)
		}
	}
}
