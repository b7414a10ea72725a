package node

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/knowingnode/knowingnode/harness/browser"
)

// browserShows is scenario 7: the frontend's page, opened in headless
// Chromium at url, shows the backend pods the API lists, each under its node.
// A ClusterIP target (vip) shows the one pod its connection is pinned to.
func browserShows(t *testing.T, url, ns, sel string, vip bool) string {
	t.Helper()
	ctx := browser.New(t, true, 3*time.Minute).Ctx
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(1280, 900), chromedp.Navigate(url)); err != nil {
		t.Fatalf("open %s: %v", url, err)
	}
	var shown map[string]string
	var lastErr error
	deadline := time.Now().Add(60 * time.Second)
	for {
		shown, lastErr = pagePods(ctx)
		want, err := readyPods(ns, sel)
		if err != nil {
			t.Fatal(err)
		}
		wantNodes := map[string]string{}
		for _, p := range want {
			wantNodes[p.Metadata.Name] = p.Spec.NodeName
		}
		if lastErr == nil {
			if vip {
				if len(shown) != 1 {
					lastErr = fmt.Errorf("the page shows %v, want the one pod behind the VIP", shown)
				}
				for p, n := range shown {
					if wantNodes[p] != n {
						lastErr = fmt.Errorf("the page shows %s under node %q; the API has it on %q", p, n, wantNodes[p])
					}
				}
			} else if !maps.Equal(shown, wantNodes) {
				lastErr = fmt.Errorf("the page shows pods by node %v, the API lists %v", shown, wantNodes)
			}
		}
		if lastErr == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v", url, lastErr)
		}
		// The page fans out again on a click of its Run button.
		chromedp.Do(ctx, chromedp.Click(chromedp.ID("run")))
		time.Sleep(time.Second)
	}
	var list []string
	for p, n := range shown {
		list = append(list, p+"@"+n)
	}
	slices.Sort(list)
	return fmt.Sprintf("%s shows %s", url, strings.Join(list, ", "))
}

// pagePods reads the OK backends the page shows, pod name → node group.
func pagePods(ctx context.Context) (map[string]string, error) {
	const js = `(() => {
  const gen = Number((document.getElementById("result") || {dataset: {}}).dataset.generation || 0);
  const out = [];
  for (const g of document.querySelectorAll("[data-testid=node-group]"))
    for (const b of g.querySelectorAll("[data-testid=backend]"))
      out.push({node: g.dataset.node, status: b.dataset.status,
        pod: (b.querySelector("[data-testid=pod-name]") || {textContent: ""}).textContent.trim()});
  return {generation: gen, backends: out};
})()`
	type state struct {
		Generation int `json:"generation"`
		Backends   []struct {
			Node, Status, Pod string
		} `json:"backends"`
	}
	s, err := chromedp.Run(ctx, chromedp.Evaluate[state](js))
	if err != nil {
		return nil, err
	}
	if s.Generation < 1 {
		return nil, fmt.Errorf("the page has rendered no fan-out yet")
	}
	m := map[string]string{}
	for _, b := range s.Backends {
		if b.Status != "ok" {
			return nil, fmt.Errorf("the page shows %s as %s", b.Pod, b.Status)
		}
		m[b.Pod] = b.Node
	}
	return m, nil
}
