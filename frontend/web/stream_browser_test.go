package web

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/knowingnode/knowingnode/harness/browser"
	"github.com/knowingnode/knowingnode/harness/clusterdns"
	"github.com/knowingnode/knowingnode/harness/proc"
)

// TestBrowserLiveUpdates: the page learns of discovery changes from the
// watch stream, with no poll of /v1/targets, and shows a fan-out's results as
// they arrive; with streaming turned off on the frontend it says so and polls.
// Discovery runs against a real DNS server whose answer the test changes.
func TestBrowserLiveUpdates(t *testing.T) {
	browser.Path(t, false) // skip early, before building, when there is no browser
	bin := proc.Build(t)
	dns, err := clusterdns.Start("127.0.0.1:0", "cluster.local.")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dns.Close() })
	setPods := func(n int) {
		if err := dns.SetService(clusterdns.Service{Namespace: "ns", Name: "web", ClusterIP: "None", Endpoints: clusterdns.Pods("web", n)}); err != nil {
			t.Fatal(err)
		}
	}
	setPods(2)
	backend := func(pod string, args ...string) string {
		b := proc.Start(t, filepath.Join(bin, "backend"), []string{"POD_NAME=" + pod, "NODE_NAME=node-a"},
			append([]string{"--grpc-addr", "127.0.0.1:0", "--admin-addr", "", "--drain-delay", "0s", "--downward-dir", ""}, args...)...)
		return b.Addrs["grpc"]
	}
	// The slow backend answers 1s late (the backend timeout is 2s), so the fast one's result is on the
	// page alone for that long.
	static := "backends=static:///" + backend("fast") + "," + backend("slow", "--fault-latency", "1s")
	frontend := func(args ...string) string {
		fe := proc.Start(t, filepath.Join(bin, "frontend"), []string{"POD_NAME=frontend-0"},
			append([]string{"--http-addr", "127.0.0.1:0", "--grpc-addr", "127.0.0.1:0", "--admin-addr", "", "--drain-delay", "0s",
				"--downward-dir", "", "--refresh-interval", "1s", "--target", static,
				"--target", "web=dns://" + dns.Addr() + "/web.ns.svc.cluster.local:9090"}, args...)...)
		return "http://" + fe.Addrs["http"] + "/"
	}
	streaming, polling := frontend(), frontend("--streaming=false")

	br := browser.New(t, false, 5*time.Minute)
	ctx := br.Ctx
	do(t, ctx, "open the page", chromedp.Navigate(streaming))
	waitFor(t, ctx, "the page to say it streams discovery",
		`document.querySelector("[data-testid=live-mode]").dataset.mode === "streaming"`)
	waitFor(t, ctx, "web's 2 endpoints", endpointsShown("web", 2))

	// The fan-out on load: the fast backend's card shows while the slow one
	// still holds its call, before the result is complete.
	waitFor(t, ctx, "the first result alone, while the fan-out runs",
		`document.getElementById("result").dataset.generation === "0" && document.querySelectorAll("[data-testid=backend]").length === 1 &&
		 document.querySelector("[data-testid=backend]").dataset.pod === "fast"`)
	waitGeneration(t, ctx, 1)
	if got := readPage(t, ctx); len(got.withStatus("ok")) != 2 || !strings.Contains(got.Status, "2 ok") {
		t.Errorf("after the streamed fan-out: %+v; want both backends OK", got)
	}
	noPlaceholders(t, ctx, "streaming")
	if mode := evalString(t, ctx, `document.querySelector("[data-testid=fanout-transport]").dataset.mode`); mode != "streaming" {
		t.Errorf("fan-out transport %q, want streaming", mode)
	}

	// Discovery changes: the page shows them with no reload and no poll.
	targetsRequests := `String(performance.getEntriesByType("resource").filter((e) => new URL(e.name).pathname === "/v1/targets").length)`
	before, since := evalString(t, ctx, targetsRequests), time.Now()
	for _, n := range []int{4, 1} {
		setPods(n)
		start := time.Now()
		waitFor(t, ctx, fmt.Sprintf("web's %d endpoints", n), endpointsShown("web", n))
		t.Logf("streaming: the page showed %d endpoints %v after the DNS answer changed (refresh interval 1s)", n, time.Since(start).Round(time.Millisecond))
	}
	// No /v1/targets request since, over more than one polling period
	// (3 s): the page did not poll while it streamed. Waiting is the test.
	time.Sleep(time.Until(since.Add(3500 * time.Millisecond)))
	if after := evalString(t, ctx, targetsRequests); after != before {
		t.Errorf("the page requested /v1/targets %s times while streaming, %s before; want no poll", after, before)
	}

	// Streaming off: the page says why and polls; changes still arrive.
	do(t, ctx, "open the page on a frontend without streaming", chromedp.Navigate(polling))
	waitFor(t, ctx, "the page to say it polls",
		`document.querySelector("[data-testid=live-mode]").dataset.mode === "polling" &&
		 document.querySelector("[data-testid=live-mode]").textContent.includes("UNIMPLEMENTED")`)
	waitGeneration(t, ctx, 1)
	if got := readPage(t, ctx); len(got.withStatus("ok")) != 2 {
		t.Errorf("fan-out without streaming: %+v; want both backends OK", got)
	}
	if mode := evalString(t, ctx, `document.querySelector("[data-testid=fanout-transport]").dataset.mode`); mode != "polling" {
		t.Errorf("fan-out transport %q without streaming, want polling", mode)
	}
	setPods(3)
	start := time.Now()
	waitFor(t, ctx, "web's 3 endpoints, polled", endpointsShown("web", 3))
	t.Logf("polling: the page showed 3 endpoints %v after the DNS answer changed (poll every 3 s)", time.Since(start).Round(time.Millisecond))
	noPlaceholders(t, ctx, "polling")

	for _, m := range br.Console() {
		if m.IsException() || strings.Contains(m.Text, "Content Security Policy") {
			t.Errorf("browser console: %s", m)
		}
	}
}

func endpointsShown(target string, n int) string {
	return fmt.Sprintf(`document.querySelector("[data-testid=target-row][data-name='%s']")?.dataset.endpoints === "%d"`, target, n)
}

func waitFor(t *testing.T, ctx context.Context, what, expr string) {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	for {
		_, err := chromedp.Run(ctx, chromedp.Poll[bool](expr, chromedp.WithPollingTimeout(time.Until(deadline))))
		// As in waitGeneration: a poll that lost its document's context
		// polls again in the new one.
		if err != nil && strings.Contains(err.Error(), "Cannot find context with specified id") && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
			continue
		}
		if err != nil {
			t.Fatalf("waiting for %s: %v\npage: %+v", what, err, readPage(t, ctx))
		}
		return
	}
}

func evalString(t *testing.T, ctx context.Context, expr string) string {
	t.Helper()
	s, err := chromedp.Run(ctx, chromedp.Evaluate[string](expr))
	if err != nil {
		t.Fatalf("evaluate %s: %v", expr, err)
	}
	return s
}

// TestBrowserDNSBesideAPI: two targets of one Service, one per discovery,
// are shown with their comparison and side by side. A fake API stands in
// for the frontend, streaming the two states over the watch.
func TestBrowserDNSBesideAPI(t *testing.T) {
	browser.Path(t, false)
	const summary = "DNS: 2 addresses; API: 3 endpoints, 1 terminating; DNS answers exactly the ready endpoints; only in the API: 10.244.0.12 (terminating)"
	dnsTarget := `{"name":"web-dns","mode":"DISCOVERY_MODE_DNS","refreshes":"1","endpoints":[{"address":"10.244.0.10:9090"},{"address":"10.244.0.11:9090"}],
	  "compare":[{"other":"web-api","summary":"` + summary + `","onlyApi":["10.244.0.12 (terminating)"],"agree":true}]}`
	apiTarget := `{"name":"web-api","mode":"DISCOVERY_MODE_KUBERNETES","refreshes":"1","endpoints":[
	  {"address":"10.244.0.10:9090","slice":{"ready":true,"nodeName":"node-a"}},
	  {"address":"10.244.0.11:9090","slice":{"ready":true,"nodeName":"node-b"}},
	  {"address":"10.244.0.12:9090","slice":{"terminating":true,"nodeName":"node-b"}}],
	  "compare":[{"other":"web-dns","summary":"` + summary + `","onlyApi":["10.244.0.12 (terminating)"],"agree":true}]}`
	oneLine := strings.NewReplacer("\n", "", "\t", "")
	mux := http.NewServeMux()
	mux.Handle("/", Handler())
	mux.HandleFunc("GET /v1/identity", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `{"identity":{"podName":"frontend-0"}}`)
	})
	mux.HandleFunc("GET /v1/targets", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, `{"targets":[%s,%s],"defaultTarget":"web-dns"}`, dnsTarget, apiTarget)
	})
	mux.HandleFunc("GET /v1/targets:watch", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/x-ndjson")
		for _, tg := range []string{dnsTarget, apiTarget} {
			fmt.Fprintf(w, "{\"result\":{\"target\":%s,\"initial\":true,\"defaultTarget\":\"web-dns\"}}\n", oneLine.Replace(tg))
		}
		w.(http.Flusher).Flush()
		<-r.Context().Done() // a watch stays open
	})
	mux.HandleFunc("GET /v1/fanout", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprint(w, `{"error":{"code":14,"message":"no endpoints reachable"}}`)
	})
	srv := httptest.NewServer(mux)
	// Closed after the browser (cleanups run last first): the open watch
	// ends with the browser.
	t.Cleanup(srv.Close)

	ctx := browser.New(t, false, 5*time.Minute).Ctx
	do(t, ctx, "open the page", chromedp.Navigate(srv.URL+"/"))
	waitFor(t, ctx, "both comparisons", `document.querySelectorAll("[data-testid=target-compare]").length === 2`)
	for _, c := range []struct{ name, other string }{{"web-dns", "web-api"}, {"web-api", "web-dns"}} {
		got := evalString(t, ctx, fmt.Sprintf(`document.querySelector("[data-testid=target-compare][data-name='%s']").textContent`, c.name))
		if !strings.Contains(got, "beside "+c.other) || !strings.Contains(got, summary) {
			t.Errorf("%s's comparison %q; want it beside %s: %q", c.name, got, c.other, summary)
		}
	}
	// The selected target (web-dns) shows both views side by side, the
	// terminating endpoint marked as the difference.
	waitFor(t, ctx, "the side-by-side view", `document.querySelectorAll("[data-testid=api-endpoint]").length === 3`)
	side := evalString(t, ctx, `JSON.stringify({
	  dns: [...document.querySelectorAll("[data-testid=dns-address]")].map((e) => e.textContent + "|" + e.dataset.differs),
	  api: [...document.querySelectorAll("[data-testid=api-endpoint]")].map((e) => e.textContent + "|" + e.dataset.differs)})`)
	for _, want := range []string{`"10.244.0.10|false"`, `"10.244.0.11|false"`, `10.244.0.10 ready on node-a|false`, `10.244.0.12 terminating on node-b · not in DNS|true`} {
		if !strings.Contains(side, want) {
			t.Errorf("side by side %s; want %s in it", side, want)
		}
	}
	if mode := evalString(t, ctx, `document.querySelector("[data-testid=live-mode]").dataset.mode`); mode != "streaming" {
		t.Errorf("live mode %q, want streaming", mode)
	}
	noPlaceholders(t, ctx, "DNS beside the API, the fan-out failing")
}
