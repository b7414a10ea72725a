package web

// End-to-end test of the page in a real browser: Debian's Chromium, driven by
// chromedp, against a real frontend binary and three real backend binaries
// that this test builds and starts. It reads the page the way a user would
// (pod names, node groups, status text) through the data-testid hooks.

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	knowingnodev1 "github.com/knowingnode/knowingnode/gen/knowingnode/v1"
	"github.com/knowingnode/knowingnode/harness/apijson"
	"github.com/knowingnode/knowingnode/harness/browser"
	"github.com/knowingnode/knowingnode/harness/poll"
	"github.com/knowingnode/knowingnode/harness/proc"
)

// waitLimit bounds every wait for a condition. It is generous on purpose:
// the test waits for states, it does not time anything.
const waitLimit = 60 * time.Second

func TestBrowserPage(t *testing.T) {
	browser.Path(t, false) // skip early, before building, when there is no browser
	bin := proc.Build(t)

	// Two backends on node-b and one on node-a, as the Downward API would
	// tell them apart in a cluster. Each binds a port of its own choosing.
	nodes := []string{"node-a", "node-b", "node-b"}
	var backends []*proc.Process
	var addrs []string
	for i, node := range nodes {
		b := proc.Start(t, filepath.Join(bin, "backend"),
			[]string{"POD_NAME=" + fmt.Sprintf("backend-%d", i), "NODE_NAME=" + node, "POD_IP=127.0.0.1", "POD_NAMESPACE=e2e"},
			"--grpc-addr", "127.0.0.1:0", "--admin-addr", "", "--drain-delay", "0s", "--downward-dir", "")
		backends = append(backends, b)
		addrs = append(addrs, b.Addrs["grpc"])
	}
	fe := proc.Start(t, filepath.Join(bin, "frontend"),
		[]string{"POD_NAME=frontend-0", "NODE_NAME=node-a", "POD_IP=127.0.0.1", "POD_NAMESPACE=e2e"},
		"--http-addr", "127.0.0.1:0", "--grpc-addr", "127.0.0.1:0", "--admin-addr", "", "--drain-delay", "0s", "--downward-dir", "",
		"--target", "backends=static:///"+strings.Join(addrs, ","))
	base := "http://" + fe.Addrs["http"] + "/"

	// The fixture must be healthy before the page is judged: all three
	// backends answer through the REST API itself.
	poll.T(t, waitLimit, "the frontend to reach 3 backends", func(ctx context.Context) error {
		var r knowingnodev1.FanOutResponse
		if err := apijson.Get(ctx, nil, base+"v1/fanout", &r); err != nil {
			return err
		}
		if r.GetSummary().GetOk() != 3 {
			return fmt.Errorf("%d ok", r.GetSummary().GetOk())
		}
		return nil
	})

	br := browser.New(t, false, 5*time.Minute)
	ctx := br.Ctx

	// EACH: open the page, trigger a fan-out, read the groups.
	do(t, ctx, "open the page", chromedp.EmulateViewport(1280, 900), chromedp.Navigate(base))
	waitGeneration(t, ctx, 1) // the page fans out once on load
	do(t, ctx, "trigger a fan-out", chromedp.Click(chromedp.ID("run")))
	waitGeneration(t, ctx, 2)
	got := readPage(t, ctx)
	want := map[string]string{"backend-0": "node-a", "backend-1": "node-b", "backend-2": "node-b"}
	if pods := got.podNodes("ok"); !maps.Equal(pods, want) {
		t.Fatalf("OK backends by node = %v, want %v\npage: %+v", pods, want, got)
	}
	if f := got.withStatus("failed"); len(f) != 0 {
		t.Fatalf("failed backends before any was stopped: %+v", f)
	}
	for _, b := range got.all() {
		if !strings.Contains(b.StatusText, "OK") {
			t.Errorf("%s: status text %q does not say OK", b.Pod, b.StatusText)
		}
	}
	if got.FrontendPod != "frontend-0" || !strings.Contains(got.FrontendPodSource, "Downward API") {
		t.Errorf("frontend identity: pod %q from %q, want frontend-0 from the Downward API", got.FrontendPod, got.FrontendPodSource)
	}
	noPlaceholders(t, ctx, "EACH, every backend ok, no zones")
	shot := os.Getenv("KNOWINGNODE_SCREENSHOT")
	screenshot(t, ctx, shot, "page.png")

	// On a phone-sized screen everything fits the width: nothing scrolls sideways.
	do(t, ctx, "phone-sized viewport", chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile))
	overflow, err := chromedp.Run(ctx, chromedp.Evaluate[int](
		`document.documentElement.scrollWidth - document.documentElement.clientWidth`))
	if err != nil {
		t.Fatal(err)
	}
	if overflow > 0 {
		t.Errorf("at 390 px wide the page is %d px too wide", overflow)
	}
	screenshot(t, ctx, "", "page-phone.png")
	do(t, ctx, "laptop-sized viewport", chromedp.EmulateViewport(1280, 900))

	// BALANCED: the calls' spread over pods, from the page's own URL state.
	do(t, ctx, "open the page in BALANCED mode", chromedp.Navigate(base+"?mode=BALANCED&count=30"))
	waitGeneration(t, ctx, 1)
	got = readPage(t, ctx)
	spread := 0
	for _, r := range got.Spread {
		spread += r.Count
	}
	if len(got.Spread) != 3 || spread != 30 {
		t.Errorf("BALANCED spread = %+v, want 3 pods sharing 30 calls", got.Spread)
	}
	noPlaceholders(t, ctx, "BALANCED")
	if got.SpreadPolicy != "policy round_robin" {
		t.Errorf("BALANCED names %q, want policy round_robin", got.SpreadPolicy)
	}

	// A policy from the URL: ring_hash, and beside each pod the load it
	// reported (the backends report ORCA by default).
	do(t, ctx, "open the page in BALANCED mode under ring_hash", chromedp.Navigate(base+"?mode=BALANCED&count=30&policy=ring_hash"))
	waitGeneration(t, ctx, 1)
	got = readPage(t, ctx)
	if got.SpreadPolicy != "policy ring_hash" || len(got.Spread) == 0 {
		t.Errorf("ring_hash: spread %+v under %q, want the pods under policy ring_hash", got.Spread, got.SpreadPolicy)
	}
	for _, r := range got.Spread {
		if !strings.HasPrefix(r.Load, "reported: cpu ") || !strings.Contains(r.Load, "calls/s") {
			t.Errorf("ring_hash: %s's load line %q, want what it reported", r.Pod, r.Load)
		}
	}

	// Stop one backend as a crash would, and trigger again: the page must mark
	// it failed with its gRPC code, and keep the other two OK under their nodes.
	do(t, ctx, "back to EACH", chromedp.Navigate(base+"?mode=EACH"))
	waitGeneration(t, ctx, 1)
	if err := backends[2].Kill(); err != nil {
		t.Fatal(err)
	}
	do(t, ctx, "trigger a fan-out", chromedp.Click(chromedp.ID("run")))
	waitGeneration(t, ctx, 2)
	got = readPage(t, ctx)
	if pods := got.podNodes("ok"); !maps.Equal(pods, map[string]string{"backend-0": "node-a", "backend-1": "node-b"}) {
		t.Errorf("OK backends after stopping backend-2 = %v, want backend-0 on node-a and backend-1 on node-b", pods)
	}
	failed := got.withStatus("failed")
	if len(failed) != 1 {
		t.Fatalf("failed backends = %+v, want exactly the stopped one", failed)
	}
	f := failed[0]
	if f.Address != addrs[2] || f.Node != "" || f.Code != "UNAVAILABLE" ||
		!strings.Contains(f.StatusText, "FAILED") || !strings.Contains(f.StatusText, "UNAVAILABLE") || f.Message == "" {
		t.Errorf("stopped backend shown as %+v; want address %s under the unknown node, code UNAVAILABLE in its status text, and a message", f, addrs[2])
	}
	if shot != "" {
		shot = strings.TrimSuffix(shot, ".png") + "-failed.png"
	}
	if !strings.Contains(got.Changes, "no longer answering: backend-2") {
		t.Errorf("changes line %q does not say that backend-2 stopped answering", got.Changes)
	}
	screenshot(t, ctx, shot, "page-failed.png")
	noPlaceholders(t, ctx, "EACH, a backend failed")

	// Auto-refresh: with the toggle on, new results arrive with no click.
	gen := got.Generation
	do(t, ctx, "turn auto-refresh on", chromedp.Click(chromedp.ID("auto")))
	waitGeneration(t, ctx, gen+2)

	for _, m := range br.Console() {
		// An exception is a page bug; a CSP report means the page asked for
		// something its own policy forbids.
		if m.IsException() || strings.Contains(m.Text, "Content Security Policy") {
			t.Errorf("browser console: %s", m)
		}
	}
}

func do(t *testing.T, ctx context.Context, what string, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	if err := chromedp.Do(ctx, actions...); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// waitGeneration waits until the page has rendered at least n results since
// it loaded; the page counts them in #result's data-generation.
func waitGeneration(t *testing.T, ctx context.Context, n int) {
	t.Helper()
	expr := `Number(document.getElementById("result").dataset.generation) >= ` + strconv.Itoa(n)
	deadline := time.Now().Add(waitLimit)
	for {
		_, err := chromedp.Run(ctx, chromedp.Poll[bool](expr, chromedp.WithPollingTimeout(time.Until(deadline))))
		// A poll begun while the tab still swapped documents (right after a
		// Navigate, on a busy machine) loses its execution context: poll
		// again in the new one.
		if err != nil && strings.Contains(err.Error(), "Cannot find context with specified id") && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
			continue
		}
		if err != nil {
			t.Fatalf("waiting for result %d on the page: %v\npage: %+v", n, err, readPage(t, ctx))
		}
		return
	}
}

// pageState is what the page shows, read from its DOM.
type pageState struct {
	Generation        int           `json:"generation"`
	Status            string        `json:"status"`
	Error             string        `json:"error"`
	Changes           string        `json:"changes"`
	FrontendPod       string        `json:"frontendPod"`
	FrontendPodSource string        `json:"frontendPodSource"`
	Zones             string        `json:"zones"`
	Groups            []groupState  `json:"groups"`
	Spread            []spreadState `json:"spread"`
	SpreadPolicy      string        `json:"spreadPolicy"`
}

type groupState struct {
	Node     string         `json:"node"`
	Title    string         `json:"title"`
	Zone     string         `json:"zone"`
	Backends []backendState `json:"backends"`
}

type backendState struct {
	Node       string `json:"node"`
	Pod        string `json:"pod"`
	Address    string `json:"address"`
	Status     string `json:"status"`
	Code       string `json:"code"`
	StatusText string `json:"statusText"`
	Message    string `json:"message"`
}

type spreadState struct {
	Pod   string `json:"pod"`
	Count int    `json:"count"`
	Load  string `json:"load"`
}

const readPageJS = `(() => {
  const text = (root, sel) => { const e = root.querySelector(sel); return e ? e.textContent.trim() : ""; };
  return {
    generation: Number(document.getElementById("result").dataset.generation),
    status: text(document, "[data-testid=status]"),
    error: document.getElementById("error").hidden ? "" : text(document, "#error"),
    changes: document.getElementById("changes").hidden ? "" : text(document, "#changes"),
    frontendPod: text(document, "[data-testid=fe-pod_name]"),
    frontendPodSource: text(document, "[data-testid=fe-source-pod_name]"),
    zones: text(document, "[data-testid=sum-zones]"),
    groups: [...document.querySelectorAll("[data-testid=node-group]")].map((g) => ({
      node: g.dataset.node,
      title: text(g, "[data-testid=node-name]"),
      zone: text(g, "[data-testid=node-zone]"),
      backends: [...g.querySelectorAll("[data-testid=backend]")].map((b) => ({
        node: g.dataset.node,
        pod: text(b, "[data-testid=pod-name]"),
        address: b.dataset.address,
        status: b.dataset.status,
        code: b.dataset.code,
        statusText: text(b, "[data-testid=status]"),
        message: text(b, "[data-testid=message]"),
      })),
    })),
    spread: [...document.querySelectorAll("#spread:not([hidden]) [data-testid=spread-row]")].map((r) => ({
      pod: r.dataset.pod, count: Number(r.dataset.count), load: text(r, "[data-testid=spread-load]"),
    })),
    spreadPolicy: text(document, "[data-testid=spread-policy]"),
  };
})()`

func readPage(t *testing.T, ctx context.Context) pageState {
	t.Helper()
	s, err := chromedp.Run(ctx, chromedp.Evaluate[pageState](readPageJS))
	if err != nil {
		t.Fatalf("read the page: %v", err)
	}
	return s
}

func (s pageState) all() []backendState {
	var out []backendState
	for _, g := range s.Groups {
		out = append(out, g.Backends...)
	}
	return out
}

func (s pageState) withStatus(status string) []backendState {
	var out []backendState
	for _, b := range s.all() {
		if b.Status == status {
			out = append(out, b)
		}
	}
	return out
}

// podNodes maps each shown pod name with the status to the node group it is
// shown under; a pod shown twice maps to "duplicate".
func (s pageState) podNodes(status string) map[string]string {
	m := map[string]string{}
	for _, b := range s.withStatus(status) {
		if _, dup := m[b.Pod]; dup {
			m[b.Pod] = "duplicate"
			continue
		}
		m[b.Pod] = b.Node
	}
	return m
}

// screenshot saves the whole page to path, or to the test's temporary
// directory under name when path is empty.
func screenshot(t *testing.T, ctx context.Context, path, name string) {
	t.Helper()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100)) // 100: PNG
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	if path == "" {
		path = filepath.Join(t.TempDir(), name)
	}
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", path)
}

// TestBrowserPageEdgeCases covers what real processes cannot easily produce:
// a fan-out that fails as a whole with the discovery error, and names from the
// cluster that look like markup. A fake API stands in for the frontend here.
func TestBrowserPageEdgeCases(t *testing.T) {
	const hostile = `<img src=x onerror="window.pwned=1">`
	target := func(name, lastError string) string {
		b, _ := json.Marshal(map[string]any{"name": name, "mode": "DISCOVERY_MODE_DNS",
			"query": name + ".ns.svc.cluster.local", "lastError": lastError})
		return string(b)
	}
	mux := http.NewServeMux()
	mux.Handle("/", Handler())
	mux.HandleFunc("GET /v1/identity", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `{"identity":{"podName":"frontend-0"}}`)
	})
	mux.HandleFunc("GET /v1/targets", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, `{"targets":[%s,%s],"defaultTarget":"hostile"}`,
			target("hostile", ""), target("gone", "lookup gone.ns.svc.cluster.local: no such host"))
	})
	mux.HandleFunc("GET /v1/fanout", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("target") == "gone" {
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprint(w, `{"error":{"code":14,"message":"nothing discovered for target gone: no such host"}}`)
			return
		}
		id, _ := json.Marshal(map[string]any{"podName": hostile, "nodeName": hostile, "zone": hostile})
		byZone, _ := json.Marshal(map[string]int{hostile: 1, "zone-b": 2})
		fmt.Fprintf(w, `{"target":"hostile","mode":"FAN_OUT_MODE_EACH","results":[{"address":"10.0.0.1:9090","identity":%s,"code":"OK","latency":"0.001s"}],"summary":{"total":1,"ok":1,"byZone":%s}}`, id, byZone)
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()

	ctx := browser.New(t, false, 5*time.Minute).Ctx
	do(t, ctx, "open the page", chromedp.Navigate(srv.URL+"/"))
	waitGeneration(t, ctx, 1)
	got := readPage(t, ctx)
	if b := got.all(); len(b) != 1 || b[0].Pod != hostile || b[0].Node != hostile {
		t.Errorf("backends = %+v, want one whose pod and node names are shown as the text %q", b, hostile)
	}
	// Zones: the summary's count by zone, sorted, and each node group's zone.
	if want := hostile + " 1, zone-b 2"; got.Zones != want {
		t.Errorf("zones in the summary %q, want %q", got.Zones, want)
	}
	if len(got.Groups) != 1 || got.Groups[0].Zone != "· zone "+hostile {
		t.Errorf("node groups %+v, want one showing the zone %q", got.Groups, hostile)
	}
	noPlaceholders(t, ctx, "with zones")
	injected, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`window.pwned === 1 || document.querySelector("#groups img, #summary img") !== null`))
	if err != nil || injected {
		t.Errorf("a pod name became markup (injected=%v, err=%v)", injected, err)
	}

	do(t, ctx, "open the page on a target with nothing discovered", chromedp.Navigate(srv.URL+"/?target=gone"))
	waitGeneration(t, ctx, 1)
	// The discovery error arrives from a second request after the failure.
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](
		`document.querySelector("[data-testid=disc-last-error]")?.textContent.includes("no such host")`,
		chromedp.WithPollingTimeout(waitLimit))); err != nil {
		t.Errorf("discovery's last error not shown: %v", err)
	}
	got = readPage(t, ctx)
	if !strings.Contains(got.Error, "UNAVAILABLE") || !strings.Contains(got.Error, "nothing discovered") || len(got.Groups) != 0 {
		t.Errorf("failed fan-out shown as error %q with %d node groups; want the code, the message and no stale backends", got.Error, len(got.Groups))
	}
	noPlaceholders(t, ctx, "a failed fan-out, discovery failing")
}
