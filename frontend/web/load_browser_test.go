package web

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/knowingnode/knowingnode/harness/browser"
	"github.com/knowingnode/knowingnode/harness/proc"
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

	for _, m := range br.Console() {
		if m.Type == "error" || m.Type == "warning" || strings.Contains(m.Text, "Content Security Policy") {
			t.Errorf("console %s: %s", m.Type, m.Text)
		}
	}
}
