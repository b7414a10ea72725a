package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/knowingnode/knowingnode/harness/clusterdns"
	"github.com/knowingnode/knowingnode/harness/loopbackpods"
	"github.com/knowingnode/knowingnode/harness/proc"
	"github.com/knowingnode/knowingnode/internal/load/report"
)

// A pod added to a headless Service mid-run: the report marks when it
// appeared in DNS within one refresh period of when it truly did, and its
// time from then to its first call is within one refresh period of the
// truth (the first call minus the moment the DNS server had it).
func TestReportReadyToFirstCallDNS(t *testing.T) {
	const refresh = time.Second
	// Scheduling slack on a busy machine, on top of the refresh period.
	const slack = 750 * time.Millisecond
	bin := filepath.Join(proc.Build(t, "."), "load")
	ips, port := loopbackpods.Start(t, 3, 71, "web")
	dns, err := clusterdns.Start("127.0.0.1:0", "cluster.local.")
	if err != nil {
		t.Fatal(err)
	}
	defer dns.Close()
	scale := func(n int) {
		svc := clusterdns.Service{Namespace: "ns", Name: "web", ClusterIP: "None", TTL: 1,
			Ports: []clusterdns.Port{{Name: "grpc", Port: port}}}
		for _, ip := range ips[:n] {
			svc.Endpoints = append(svc.Endpoints, clusterdns.Endpoint{IP: ip})
		}
		if err := dns.SetService(svc); err != nil {
			t.Fatal(err)
		}
	}
	scale(2)
	file := filepath.Join(t.TempDir(), "run.html")
	cmd := exec.CommandContext(t.Context(), bin, "--target", fmt.Sprintf("dns://%s/web.ns.svc.cluster.local:%d", dns.Addr(), port),
		"--balancing", "round_robin", "--refresh", refresh.String(), "--rate", "100", "--duration", "6s", "--window", "500ms",
		"--json", "-", "--report", file)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(out)
	var truth time.Time
	for windows := 0; sc.Scan(); {
		var l line
		if json.Unmarshal(sc.Bytes(), &l) == nil && l.Type == "window" {
			if windows++; windows == 3 {
				scale(3)
				truth = time.Now()
			}
		}
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("load: %v\n%s", err, stderr.String())
	}
	if truth.IsZero() {
		t.Fatalf("the load ended before its third window:\n%s", stderr.String())
	}
	d, err := report.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	abs := func(s float64) time.Time { return d.Start.Add(time.Duration(s * float64(time.Second))) }
	pods := map[string]report.Pod{}
	for _, p := range d.Pods {
		pods[p.Name] = p
	}
	p, ok := pods["web-2"]
	if !ok || !p.New || p.Ready == nil || p.FirstCall == nil || p.ReadyToFirstCall == nil {
		t.Fatalf("web-2: %+v; want a new pod with its DNS appearance and first call (pods %+v)", p, d.Pods)
	}
	seen := abs(*p.Ready).Sub(truth)
	want := abs(*p.FirstCall).Sub(truth)
	got := time.Duration(*p.ReadyToFirstCall * float64(time.Second))
	t.Logf("web-2 in DNS at +0, seen by the load %v later; first call %v after it was in DNS; the report says %v", seen, want, got)
	if seen < -10*time.Millisecond || seen > refresh+slack {
		t.Errorf("the load saw web-2 in DNS %v after it was there; want within the refresh period %v (+%v slack)", seen, refresh, slack)
	}
	if diff := want - got; diff < -10*time.Millisecond || diff > refresh+slack {
		t.Errorf("Ready to first call %v in the report, %v in truth; want within %v (+%v slack)", got, want, refresh, slack)
	}
	if got < 0 || got > refresh+slack {
		t.Errorf("round robin called web-2 %v after its address reached the load; want at once", got)
	}
	for _, name := range []string{"web-0", "web-1"} {
		if q := pods[name]; q.New || q.FirstCall == nil || q.Ready == nil {
			t.Errorf("%s: %+v; want there from the start, in DNS and called", name, q)
		}
	}
	if len(d.NeverCalled) != 0 || d.Discovery != "dns" || len(d.Series.T) < 10 {
		t.Errorf("never called %v, discovery %q, %d windows; want none, dns, 12", d.NeverCalled, d.Discovery, len(d.Series.T))
	}
}
