package web

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	cdpbrowser "github.com/chromedp/cdproto/browser"
	"github.com/chromedp/chromedp"

	"github.com/knowingnode/knowingnode/harness/browser"
	"github.com/knowingnode/knowingnode/harness/proc"
	"github.com/knowingnode/knowingnode/internal/load/report"
)

// The Load panel in headless Chromium against real processes: a load spreads
// over three backends; one is killed, and its band falls to zero while its
// failures show by code. No console or CSP errors along the way.
func TestBrowserLoadPanel(t *testing.T) {
	browser.Path(t, false) // skip early, before building, when there is no browser
	dir := proc.Build(t)
	start := func(name string, env []string, args ...string) *proc.Process {
		p := proc.Start(t, filepath.Join(dir, name), append([]string{"DRAIN_DELAY=0s"}, env...), args...)
		t.Cleanup(func() { p.Stop(t) })
		return p
	}
	var backends []*proc.Process
	var addrs []string
	for i, node := range []string{"node-a", "node-b", "node-b"} {
		b := start("backend", []string{fmt.Sprintf("POD_NAME=backend-%d", i), "NODE_NAME=" + node},
			"--grpc-addr", "127.0.0.1:0", "--admin-addr", "", "--downward-dir", "")
		backends = append(backends, b)
		addrs = append(addrs, b.Addrs["grpc"])
	}
	fe := start("frontend", []string{"POD_NAME=frontend-0", "NODE_NAME=node-a"},
		"--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0", "--downward-dir", "", "--backend-timeout", "1s",
		"--target", "backends=static:///"+strings.Join(addrs, ","))
	base := "http://" + fe.Addrs["http"] + "/"

	br := browser.New(t, false, 5*time.Minute)
	ctx := br.Ctx
	do(t, ctx, "open the page", chromedp.EmulateViewport(1280, 1400), chromedp.Navigate(base))
	poll := func(what, expr string) {
		t.Helper()
		if _, err := chromedp.Run(ctx, chromedp.Poll[bool](expr, chromedp.WithPollingTimeout(waitLimit))); err != nil {
			state, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.getElementById("load-status").textContent + " | " + document.getElementById("load-legend").textContent + " | " + document.getElementById("load-failures").textContent`))
			t.Fatalf("waiting for %s: %v; panel: %s", what, err, state)
		}
	}
	poll("the targets", `document.querySelectorAll("#load-target option").length === 1`)
	do(t, ctx, "start a load",
		chromedp.SetValue(chromedp.ID("load-rate"), "60"),
		chromedp.SetValue(chromedp.ID("load-duration"), "30"),
		chromedp.SetValue(chromedp.ID("load-mode"), "EACH"),
		chromedp.Click(chromedp.ID("load-start")))

	share := func(pod string) string {
		return fmt.Sprintf(`Number((document.querySelector('#load-legend [data-pod="%s"]') || {dataset: {share: -1}}).dataset.share)`, pod)
	}
	poll("three bands sharing the calls", `document.querySelectorAll("#load-share polygon").length === 3 && `+
		share("backend-0")+` > 20 && `+share("backend-1")+` > 20 && `+share("backend-2")+` > 20`)
	// Bands are grouped by node: node-a's pod first, then node-b's.
	order, err := chromedp.Run(ctx, chromedp.Evaluate[string](`[...document.querySelectorAll("#load-share polygon")].map(p => p.dataset.node + "/" + p.dataset.pod).join(",")`))
	if err != nil {
		t.Fatal(err)
	}
	if order != "node-a/backend-0,node-b/backend-1,node-b/backend-2" {
		t.Errorf("bands %s, want grouped by node", order)
	}
	noPlaceholders(t, ctx, "a load running")

	if err := backends[2].Kill(); err != nil {
		t.Fatal(err)
	}
	poll("backend-2's band at zero and its failures shown",
		share("backend-2")+` === 0 && `+share("backend-0")+` > 35 && document.getElementById("load-failures").dataset.codes.includes("UNAVAILABLE")`)
	noPlaceholders(t, ctx, "a load with failures")
	do(t, ctx, "stop the load", chromedp.Click(chromedp.ID("load-stop")))
	poll("the load to stop", `document.getElementById("load-status").dataset.state === "stopped"`)
	noPlaceholders(t, ctx, "a load stopped")
	poll("the stopped run's report offered", `!document.getElementById("load-report").hidden`)
	stopped := evaluate[string](t, ctx, `document.getElementById("load-report").dataset.run`)

	// A short load to its end: its report downloads as one file with the
	// stream's windows, and opens from disk requesting nothing.
	do(t, ctx, "start a short load",
		chromedp.SetValue(chromedp.ID("load-rate"), "20"),
		chromedp.SetValue(chromedp.ID("load-duration"), "3"),
		chromedp.SetValue(chromedp.ID("load-mode"), "BALANCED"),
		chromedp.Click(chromedp.ID("load-start")))
	poll("the short load done, its report offered", `document.getElementById("load-status").dataset.state === "done" && `+
		`!document.getElementById("load-report").hidden && document.getElementById("load-report").dataset.run !== "`+stopped+`"`)
	windows := evaluate[int](t, ctx, `Number(document.getElementById("load-report").dataset.windows)`)
	name, file := download(t, ctx, chromedp.ID("load-report"))
	if !regexp.MustCompile(`^knowingnode-load-backends-\d{8}T\d{6}Z\.html$`).MatchString(name) {
		t.Errorf("the report downloads as %q; want knowingnode-load-backends-<time>.html", name)
	}
	d, err := report.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Series.T) != windows || windows < 3 || d.Summary.Sent == 0 {
		t.Errorf("the report has %d windows and %d calls; the panel drew %d windows", len(d.Series.T), d.Summary.Sent, windows)
	}
	t.Logf("downloaded %s: %d windows, %d calls, %d pods", name, len(d.Series.T), d.Summary.Sent, len(d.Pods))
	var called []string
	for _, p := range d.Pods {
		if p.FirstCall != nil {
			called = append(called, p.Name)
		}
	}
	if !slices.Equal(called, []string{"backend-0", "backend-1"}) && !slices.Equal(called, []string{"backend-1", "backend-0"}) {
		t.Errorf("pods called in the report: %v; want backend-0 and backend-1 (backend-2 was killed)", called)
	}
	requested := br.Offline(t)
	u := (&url.URL{Scheme: "file", Path: file}).String()
	do(t, ctx, "open the report from disk, offline", chromedp.Navigate(u))
	poll("the report's tables", `document.querySelector('table[data-table="by pod"]') !== null`)
	if n := evaluate[int](t, ctx, `window.report.charts.length`); n < 3 {
		t.Errorf("the report drew %d charts", n)
	}
	if reqs := requested(); !slices.Equal(reqs, []string{u}) {
		t.Errorf("opening the report requested %v; want only the file itself", reqs)
	}

	for _, m := range br.Console() {
		if m.Type == "error" || m.Type == "warning" || strings.Contains(m.Text, "Content Security Policy") {
			t.Errorf("console %s: %s", m.Type, m.Text)
		}
	}
}

func evaluate[T any](t *testing.T, ctx context.Context, expr string) T {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

// download clicks link and waits for the download it starts: the name the
// browser suggests (the server's Content-Disposition) and the file saved.
func download(t *testing.T, ctx context.Context, link chromedp.ID) (name, file string) {
	t.Helper()
	dir := t.TempDir()
	wctx, cancel := context.WithTimeout(ctx, waitLimit)
	defer cancel()
	begins := chromedp.Events(wctx, cdpbrowser.DownloadWillBegin)
	progress := chromedp.Events(wctx, cdpbrowser.DownloadProgress)
	events := true
	if _, err := chromedp.Call(ctx, cdpbrowser.SetDownloadBehavior, cdpbrowser.SetDownloadBehaviorParams{
		Behavior: cdpbrowser.SetDownloadBehaviorBehaviorAllowAndName, DownloadPath: dir, EventsEnabled: &events,
	}); err != nil {
		t.Fatalf("allow downloads: %v", err)
	}
	do(t, ctx, "click the download", chromedp.Click(link))
	for ev, err := range begins {
		if err != nil {
			t.Fatalf("waiting for the download to begin: %v", err)
		}
		name = ev.SuggestedFilename
		break
	}
	for ev, err := range progress {
		if err != nil {
			t.Fatalf("waiting for the download: %v", err)
		}
		if ev.State == cdpbrowser.DownloadProgressStateCanceled {
			t.Fatalf("the download of %s was canceled", name)
		}
		if ev.State == cdpbrowser.DownloadProgressStateCompleted {
			file = filepath.Join(dir, ev.GUID)
			break
		}
	}
	// Saved under its GUID: give it its name back, so that it opens as HTML.
	named := filepath.Join(dir, filepath.Base(name))
	if err := os.Rename(file, named); err != nil {
		t.Fatalf("the downloaded report: %v", err)
	}
	return name, named
}
