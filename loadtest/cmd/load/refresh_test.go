package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/knowingnode/knowingnode/harness/clusterdns"
	"github.com/knowingnode/knowingnode/harness/loopbackpods"
	"github.com/knowingnode/knowingnode/harness/proc"
)

// With --refresh, a load through a headless Service reaches the pods added
// while it runs, as an autoscaler adds them; without it, gRPC's dns resolver
// never looks again while its connections stay up.
func TestRefreshFollowsHeadlessService(t *testing.T) {
	bin := filepath.Join(proc.Build(t, "."), "load")
	ips, port := loopbackpods.Start(t, 3, 61, "web")
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
	target := fmt.Sprintf("dns://%s/web.ns.svc.cluster.local:%d", dns.Addr(), port)
	for _, tc := range []struct {
		refresh string
		want    int // pods that answer once the Service has 3
	}{
		{"200ms", 3},
		{"0", 1},
	} {
		t.Run("refresh="+tc.refresh, func(t *testing.T) {
			scale(1)
			cmd := exec.CommandContext(t.Context(), bin, "--target", target, "--balancing", "round_robin",
				"--refresh", tc.refresh, "--rate", "100", "--duration", "30s", "--window", "200ms", "--json", "-")
			out, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			defer cmd.Wait()
			defer cmd.Process.Kill()
			lines := make(chan line, 1000)
			go func() {
				defer close(lines)
				sc := bufio.NewScanner(out)
				for sc.Scan() {
					var l line
					if json.Unmarshal(sc.Bytes(), &l) == nil {
						lines <- l
					}
				}
			}()
			// The first windows answer from the one pod; then the Service
			// grows to 3 and every window after that counts who answered.
			next := func() line {
				select {
				case l, ok := <-lines:
					if !ok {
						t.Fatal("load stopped early")
					}
					return l
				case <-time.After(10 * time.Second):
					t.Fatal("no window for 10s")
				}
				return line{}
			}
			if l := next(); l.Failed != 0 || len(l.ByPod) != 1 {
				t.Fatalf("first window: %+v; want calls to the one pod", l)
			}
			scale(3)
			seen := map[string]bool{}
			var failed int64
			// 3 s is 15 refreshes: generous for "within a refresh".
			deadline := time.Now().Add(3 * time.Second)
			for time.Now().Before(deadline) {
				l := next()
				failed += l.Failed
				for p := range l.ByPod {
					seen[p] = true
				}
			}
			if len(seen) != tc.want || failed != 0 {
				t.Errorf("after the Service grew to 3 pods, %d answered (%v), %d calls failed; want %d, none failed", len(seen), seen, failed, tc.want)
			}
		})
	}
}
