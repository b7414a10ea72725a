package browser

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// A browser started and closed leaves nothing of Chromium's in the
// temporary directory: its ProcessSingleton directory
// (org.chromium.Chromium.*) goes under the profile, which is removed.
func TestLeavesNothingInTmp(t *testing.T) {
	leftovers := func() map[string]bool {
		m, err := filepath.Glob(filepath.Join(os.TempDir(), "org.chromium.Chromium.*"))
		if err != nil {
			t.Fatal(err)
		}
		set := map[string]bool{}
		for _, p := range m {
			set[p] = true
		}
		return set
	}
	before := leftovers()
	t.Run("browser", func(t *testing.T) {
		b := New(t, false, time.Minute)
		b.Do(t, "open a page", chromedp.Navigate("data:text/html,<title>ok</title>"))
		title, err := chromedp.Run(b.Ctx, chromedp.Evaluate[string]("document.title"))
		if err != nil || title != "ok" {
			t.Fatalf("title %q (%v), want ok", title, err)
		}
	})
	for p := range leftovers() {
		if !before[p] {
			t.Errorf("left behind: %s", p)
		}
	}
}
