package web

import (
	"context"
	"testing"

	"github.com/chromedp/chromedp"
)

// visiblePlaceholders lists every rendered text on the page that shows
// null, undefined or NaN: a value missing from a reply printed as if it were
// data (the summary's stray "null" beside the CODES chip, with no zones).
// Each entry names the nearest element with an id: the panel.
const visiblePlaceholders = `(() => {
  const re = /\b(null|undefined|NaN)\b/;
  const bad = [];
  const walk = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let n = walk.nextNode(); n; n = walk.nextNode()) {
    const p = n.parentElement;
    if (!p || !re.test(n.textContent) || p.closest("[hidden], script, style, template")) continue;
    if (!p.getClientRects().length) continue; // not rendered
    const panel = p.closest("[id]");
    bad.push((panel ? "#" + panel.id : "body") + ": " + n.textContent.trim().slice(0, 120));
  }
  // Attributes a user sees too.
  for (const e of document.querySelectorAll("[title], input, option")) {
    for (const v of [e.getAttribute("title"), e.value]) {
      if (v && re.test(v)) bad.push("#" + (e.id || e.closest("[id]")?.id || "?") + " attribute: " + v.slice(0, 120));
    }
  }
  return bad;
})()`

// noPlaceholders fails the test when any panel shows null, undefined or
// NaN as data.
func noPlaceholders(t *testing.T, ctx context.Context, when string) {
	t.Helper()
	bad, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](visiblePlaceholders))
	if err != nil {
		t.Fatalf("%s: reading the page: %v", when, err)
	}
	for _, b := range bad {
		t.Errorf("%s: the page shows a placeholder as data: %s", when, b)
	}
}
