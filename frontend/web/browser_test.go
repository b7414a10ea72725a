package web

// End-to-end test of the page in a real browser: Debian's Chromium, driven by
// chromedp, against a real frontend binary and three real backend binaries
// that this test builds and starts. It reads the page the way a user would
// (pod names, node groups, status text) through the data-testid hooks.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// waitLimit bounds every wait for a condition. It is generous on purpose:
// the test waits for states, it does not time anything.
const waitLimit = 60 * time.Second

func TestBrowserPage(t *testing.T) {
	chromium := findChromium(t)
	bin := buildBinaries(t)

	// Two backends on node-b and one on node-a, as the Downward API would
	// tell them apart in a cluster.
	nodes := []string{"node-a", "node-b", "node-b"}
	var backends []*process
	var addrs []string
	for i, node := range nodes {
		addr := freeAddr(t)
		addrs = append(addrs, addr)
		backends = append(backends, startProcess(t, fmt.Sprintf("backend-%d", i), filepath.Join(bin, "backend"),
			[]string{"POD_NAME=" + fmt.Sprintf("backend-%d", i), "NODE_NAME=" + node, "POD_IP=127.0.0.1", "POD_NAMESPACE=e2e"},
			"--grpc-addr", addr, "--admin-addr", "", "--drain-delay", "0s", "--downward-dir", ""))
	}
	httpAddr := freeAddr(t)
	startProcess(t, "frontend", filepath.Join(bin, "frontend"),
		[]string{"POD_NAME=frontend-0", "NODE_NAME=node-a", "POD_IP=127.0.0.1", "POD_NAMESPACE=e2e"},
		"--http-addr", httpAddr, "--grpc-addr", freeAddr(t), "--drain-delay", "0s", "--downward-dir", "",
		"--target", "backends=static:///"+strings.Join(addrs, ","))
	base := "http://" + httpAddr + "/"

	// The fixture must be healthy before the page is judged: all three
	// backends answer through the REST API itself.
	waitFor(t, "the frontend to reach 3 backends", func() error {
		var r struct {
			Summary struct {
				OK int `json:"ok"`
			} `json:"summary"`
		}
		if err := getJSON(base+"v1/fanout", &r); err != nil {
			return err
		}
		if r.Summary.OK != 3 {
			return fmt.Errorf("%d ok", r.Summary.OK)
		}
		return nil
	})

	ctx := newBrowser(t, chromium)
	console := collectConsole(ctx)

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

	// Stop one backend as a crash would, and trigger again: the page must mark
	// it failed with its gRPC code, and keep the other two OK under their nodes.
	do(t, ctx, "back to EACH", chromedp.Navigate(base+"?mode=EACH"))
	waitGeneration(t, ctx, 1)
	backends[2].kill(t)
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

	// Auto-refresh: with the toggle on, new results arrive with no click.
	gen := got.Generation
	do(t, ctx, "turn auto-refresh on", chromedp.Click(chromedp.ID("auto")))
	waitGeneration(t, ctx, gen+2)

	for _, m := range console.messages() {
		// An exception is a page bug; a CSP report means the page asked for
		// something its own policy forbids.
		if m.IsException() || strings.Contains(m.Text, "Content Security Policy") {
			t.Errorf("browser console: %s", m)
		}
	}
}

// findChromium returns Debian's Chromium. Without it the test may skip only
// when nobody asked for it: CI sets KNOWINGNODE_REQUIRE_BROWSER so that a
// missing browser fails instead of passing silently.
func findChromium(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("chromium")
	if err == nil {
		return path
	}
	if os.Getenv("KNOWINGNODE_REQUIRE_BROWSER") != "" {
		t.Fatalf("chromium not found (%v) and KNOWINGNODE_REQUIRE_BROWSER is set; install it: apt-get install chromium", err)
	}
	t.Skip("chromium not installed (apt-get install chromium, or run .ci/run); set KNOWINGNODE_REQUIRE_BROWSER=1 to make this a failure")
	return ""
}

// buildBinaries builds the real backend and frontend commands.
func buildBinaries(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	cmd := exec.Command("go", "build", "-o", dir+string(filepath.Separator),
		"github.com/knowingnode/knowingnode/backend", "github.com/knowingnode/knowingnode/frontend")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return dir
}

// freeAddr returns a loopback address with a port free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

type process struct {
	name string
	cmd  *exec.Cmd
	out  *syncBuffer
	done chan struct{}
}

func startProcess(t *testing.T, name, path string, env []string, args ...string) *process {
	t.Helper()
	p := &process{name: name, cmd: exec.Command(path, args...), out: &syncBuffer{}, done: make(chan struct{})}
	// Only what the test sets: flags' environment equivalents of the caller
	// (TARGETS, HTTP_ADDR, ...) must not leak in.
	p.cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "LOG_FORMAT=text"}, env...)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() { p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		p.kill(t)
		if t.Failed() {
			t.Logf("--- %s output:\n%s", name, p.out.String())
		}
	})
	return p
}

// kill stops the process abruptly, as a crashed pod would.
func (p *process) kill(t *testing.T) {
	select {
	case <-p.done:
		return
	default:
	}
	p.cmd.Process.Signal(syscall.SIGKILL)
	select {
	case <-p.done:
	case <-time.After(waitLimit):
		t.Errorf("%s did not exit after SIGKILL", p.name)
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func getJSON(url string, v any) error {
	resp, err := http.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", url, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

func waitFor(t *testing.T, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("waited %v for %s: %v", waitLimit, what, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// newBrowser starts headless Chromium with the flags this machine needs: no
// sandbox (root), and nothing that phones home (the network is closed, and
// every refused connection would be noise).
func newBrowser(t *testing.T, path string) context.Context {
	t.Helper()
	profile, err := os.MkdirTemp("", "knowingnode-chromium-")
	if err != nil {
		t.Fatal(err)
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(path),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(profile),
	)
	ctx, cancel := chromedp.NewContext(actx)
	ctx, cancelTimeout := context.WithTimeout(ctx, 5*time.Minute)
	t.Cleanup(func() {
		cancelTimeout()
		cancel()
		cancelAlloc()
		os.RemoveAll(profile) // best effort: the browser is gone by now
	})
	// Start the browser now, so a failure to launch is reported as such.
	if err := chromedp.Do(ctx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatalf("start chromium %s: %v", path, err)
	}
	return ctx
}

type consoleLog struct {
	mu   sync.Mutex
	msgs []chromedp.ConsoleMessage
}

func collectConsole(ctx context.Context) *consoleLog {
	c := &consoleLog{}
	msgs := chromedp.Console(ctx)
	go func() {
		for m, err := range msgs {
			if err != nil {
				return
			}
			c.mu.Lock()
			c.msgs = append(c.msgs, m)
			c.mu.Unlock()
		}
	}()
	return c
}

func (c *consoleLog) messages() []chromedp.ConsoleMessage {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.msgs)
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
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](expr, chromedp.WithPollingTimeout(waitLimit))); err != nil {
		t.Fatalf("waiting for result %d on the page: %v\npage: %+v", n, err, readPage(t, ctx))
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
	Groups            []groupState  `json:"groups"`
	Spread            []spreadState `json:"spread"`
}

type groupState struct {
	Node     string         `json:"node"`
	Title    string         `json:"title"`
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
    groups: [...document.querySelectorAll("[data-testid=node-group]")].map((g) => ({
      node: g.dataset.node,
      title: text(g, "[data-testid=node-name]"),
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
      pod: r.dataset.pod, count: Number(r.dataset.count),
    })),
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
	chromium := findChromium(t)
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
			fmt.Fprint(w, `{"code":14,"message":"nothing discovered for target gone: no such host"}`)
			return
		}
		id, _ := json.Marshal(map[string]any{"podName": hostile, "nodeName": hostile})
		fmt.Fprintf(w, `{"target":"hostile","mode":"FAN_OUT_MODE_EACH","results":[{"address":"10.0.0.1:9090","identity":%s,"code":"OK","latency":"0.001s"}],"summary":{"total":1,"ok":1}}`, id)
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()

	ctx := newBrowser(t, chromium)
	do(t, ctx, "open the page", chromedp.Navigate(srv.URL+"/"))
	waitGeneration(t, ctx, 1)
	got := readPage(t, ctx)
	if b := got.all(); len(b) != 1 || b[0].Pod != hostile || b[0].Node != hostile {
		t.Errorf("backends = %+v, want one whose pod and node names are shown as the text %q", b, hostile)
	}
	injected, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`window.pwned === 1 || document.querySelector("#groups img") !== null`))
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
}
