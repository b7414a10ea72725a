// Package browser is the one Chromium set-up of the tests: Debian's
// Chromium, headless, driven by chromedp, with the flags this machine needs
// and a log of the page's console.
package browser

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
)

// RequireEnv makes a missing Chromium a failure instead of a skip; make
// test sets it, so the browser tests always run there.
const RequireEnv = "KNOWINGNODE_REQUIRE_BROWSER"

// Path finds Chromium. Without it the test is skipped, or fails when
// RequireEnv is set (or required is true).
func Path(tb testing.TB, required bool) string {
	tb.Helper()
	path, err := exec.LookPath("chromium")
	if err == nil {
		return path
	}
	if required || os.Getenv(RequireEnv) != "" {
		tb.Fatalf("chromium not found (%v); make deps installs it (tools/debian-packages.txt)", err)
	}
	tb.Skipf("chromium not installed (make deps installs it); set %s=1 to make this a failure", RequireEnv)
	return ""
}

// Browser is a running headless Chromium with one tab.
type Browser struct {
	Ctx     context.Context // for chromedp calls; ends with the test or after the limit
	console *Console
}

// New starts Chromium (found with Path) for the test, bounded by limit: no
// sandbox (tests run as root here), nothing that phones home (the network
// is closed, and every refused connection would be noise). It is closed at
// the end of the test.
func New(tb testing.TB, required bool, limit time.Duration) *Browser {
	tb.Helper()
	path := Path(tb, required)
	profile, err := os.MkdirTemp("", "knowingnode-chromium-")
	if err != nil {
		tb.Fatal(err)
	}
	// Chromium's own temporary files (its ProcessSingleton's
	// org.chromium.Chromium.* socket directory, which a killed browser
	// leaves behind) go under the profile, so that removing it leaves
	// nothing in /tmp: hundreds were left there by a day of test runs.
	tmp := filepath.Join(profile, "tmp")
	if err := os.Mkdir(tmp, 0o700); err != nil {
		tb.Fatal(err)
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
		chromedp.UserDataDir(filepath.Join(profile, "profile")),
		chromedp.Env("TMPDIR="+tmp),
	)
	ctx, cancel := chromedp.NewContext(actx)
	ctx, cancelTimeout := context.WithTimeout(ctx, limit)
	tb.Cleanup(func() {
		cancelTimeout()
		cancel()
		cancelAlloc()
		os.RemoveAll(profile) // best effort: the browser is gone by now
	})
	// Start the browser now, so a failure to launch is reported as such.
	if err := chromedp.Do(ctx, chromedp.Navigate("about:blank")); err != nil {
		tb.Fatalf("start chromium %s: %v", path, err)
	}
	return &Browser{Ctx: ctx, console: collect(ctx)}
}

// Console is every console message the page logged, errors and CSP
// violations included.
func (b *Browser) Console() []chromedp.ConsoleMessage { return b.console.messages() }

// Offline turns the tab's network off, so that every request fails, and
// records the URL of each request the page makes from then on; requests
// lists them. A page opened from disk afterwards (a self-contained report)
// must request nothing but itself.
func (b *Browser) Offline(tb testing.TB) (requests func() []string) {
	tb.Helper()
	var mu sync.Mutex
	var urls []string
	reqs := chromedp.Events(b.Ctx, network.RequestWillBeSent)
	go func() {
		for ev, err := range reqs {
			if err != nil {
				return
			}
			mu.Lock()
			urls = append(urls, ev.Request.URL)
			mu.Unlock()
		}
	}()
	if _, err := chromedp.Call(b.Ctx, network.Enable, network.EnableParams{}); err != nil {
		tb.Fatalf("network.enable: %v", err)
	}
	if _, err := chromedp.Call(b.Ctx, network.EmulateNetworkConditionsByRule, network.EmulateNetworkConditionsByRuleParams{
		MatchedNetworkConditions: []*network.Conditions{{Offline: true, DownloadThroughput: -1, UploadThroughput: -1}},
	}); err != nil {
		tb.Fatalf("network offline: %v", err)
	}
	return func() []string {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(urls)
	}
}

// Do runs actions, failing the test with what was being done.
func (b *Browser) Do(tb testing.TB, what string, actions ...chromedp.Action[chromedp.Void]) {
	tb.Helper()
	if err := chromedp.Do(b.Ctx, actions...); err != nil {
		tb.Fatalf("%s: %v", what, err)
	}
}

// Console collects console messages.
type Console struct {
	mu   sync.Mutex
	msgs []chromedp.ConsoleMessage
}

func collect(ctx context.Context) *Console {
	c := &Console{}
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

func (c *Console) messages() []chromedp.ConsoleMessage {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.msgs)
}
