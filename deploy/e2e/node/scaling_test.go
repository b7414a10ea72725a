package node

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/knowingnode/knowingnode/harness/poll"
	"github.com/knowingnode/knowingnode/internal/load/engine"
	"github.com/knowingnode/knowingnode/internal/load/report"
	"github.com/knowingnode/knowingnode/loadtest/plot"
)

// Sizing for 2 cores. The HPAs act on the kubelets' real CPU through
// metrics-server, against the manifests' requests (backend 50m, frontend
// 100m) and 70% targets; an HPA acts above 77% (its 10% tolerance). A
// backend GetIdentity costs 35-45 µs of CPU on an idle host (docs/load) and
// about 90 µs in this cluster on a busy one, so 5,000 calls/s over 2 pods
// asks for 4 pods (idle) to 10 (busy): always more than the minimum of 2. A
// FanOut EACH over the 3 StatefulSet backends costs a frontend 260-660 µs,
// so 900/s over 2 pods asks for 4 to 6. One pinned ClusterIP connection at
// 5,000 calls/s puts 175-450m on one pod (its limit is 500m): 2 pods
// average 90-225%. When the machine cannot keep up, the load tool sends
// late or drops (reported), the calls do not fail.
const (
	backendRate  = 5000 // GetIdentity/s through headless discovery
	frontendRate = 900  // FanOut EACH/s through the frontend's ClusterIP
	pinnedRate   = 5000 // GetIdentity/s over one ClusterIP connection
	loadFor      = 75 * time.Second
	probeRate    = 50 // the steady load that spans scale-up and scale-down
	evenWithin   = 0.25
	evenLimit    = 30 * time.Second // refresh (1 s) + DNS (TTL 5 s) + health, with slack
	scaleLimit   = 120 * time.Second
	downLimit    = 180 * time.Second // 10 s window + two pods per 10 s (10→2) + drains, with room
)

// autoscale lifts one HorizontalPodAutoscaler at a time (the others stay
// held), loads its tier and watches it scale up and back down.
func autoscale(t *testing.T) {
	out := envOr("KNE2E_RESULTS", filepath.Join(repo, "bin", "e2e-node", time.Now().UTC().Format("20060102T150405Z")))
	scenario(t, "autoscale backend", func(t *testing.T) string { return autoscaleBackend(t, filepath.Join(out, "backend")) })
	scenario(t, "autoscale frontend", func(t *testing.T) string { return autoscaleFrontend(t, filepath.Join(out, "frontend")) })
	scenario(t, "autoscale clusterip", func(t *testing.T) string { return autoscaleClusterIP(t, filepath.Join(out, "clusterip")) })
}

// autoscaleBackend: two in-cluster load workers, one per node, as one test
// (deploy/components/loadtest/distributed), load the StatefulSet's backends
// through headless discovery; the backend HPA adds pods, the share evens out
// over them, and when the load ends the
// HPA removes them again, while a steady probe load from the node loses no
// call through both.
func autoscaleBackend(t *testing.T, out string) string {
	const sel = "component=backend,controlling=statefulset"
	tier := startTier(t, namespace, "backend-sts", "statefulset/backend-sts", sel)
	headless := "backend-sts.knowingnode.svc.cluster.local:9090"
	probe := startHostLoad(t, out, "probe", "--target", "dns://10.244.0.1:53/"+headless, "--balancing", "round_robin",
		"--refresh", "1s", "--rate", fmt.Sprint(probeRate), "--duration", "10m")
	job, workers := runLoadWorkers(t, out, map[string]string{
		"LOAD_TARGET": "dns:///" + headless, "LOAD_CALL": "identity", "LOAD_BALANCING": "round_robin",
		"LOAD_CONNECTIONS": "2", "LOAD_REFRESH": "1s",
	}, map[string]string{"LOAD_RATE": fmt.Sprint(backendRate), "LOAD_DURATION": loadFor.String(), "LOAD_CONCURRENCY": "64"})
	peak := tier.peak()
	if peak <= tier.min {
		t.Fatalf("the backend HPA never scaled above %d pods under %d calls/s (achieved %.0f/s): %s", tier.min, backendRate, job.sum.Rate, tier)
	}
	down := tier.waitDown(t)
	pst := probe.stop(t)
	tier.stop()
	writePlot(t, out, job, tier, false)
	firsts := writeReport(t, out, "autoscale backend", job, tier)

	evens := evenAfterReady(t, job.windows, tier)
	failed := job.sum.Failed + pst.Failed
	if failed != 0 {
		t.Errorf("%d calls failed (load %v, probe %v)", failed, job.sum.ByCode, pst.ByCode)
	}
	return fmt.Sprintf("%s; %s %.0f calls/s, %d failed, p99 %s; %s; even ±%.0f%% after each new pod Ready in %s; down to %d in %.0fs after the load; probe %d calls, %d failed; %s",
		tier.summary(), workers, job.sum.Rate, job.sum.Failed, job.sum.Latency.P99, firsts, evenWithin*100, evens, tier.min, down.Seconds(), pst.Sent, pst.Failed, out)
}

// autoscaleFrontend: two load workers (one per node, as one test) fan out
// through the StatefulSet topology's frontend Service (a ClusterIP, 32
// connections each, 64 in all: kube-proxy puts
// each on a frontend pod, and the frontend's MaxConnectionAge of 30 s moves
// them, so new pods get their share). No fan-out may fail as a whole.
func autoscaleFrontend(t *testing.T, out string) string {
	const sel = "component=frontend,controlling=statefulset"
	tier := startTier(t, namespace, "frontend-statefulset", "deployment/frontend-statefulset", sel)
	vip := "frontend-statefulset.knowingnode.svc.cluster.local:9090"
	ip, err := serviceIP(namespace, "frontend-statefulset")
	if err != nil {
		t.Fatal(err)
	}
	// In flight at most 28 + 4, the frontends' --max-fanouts: however the
	// connections fall on the pods, a slow (CPU-starved) frontend makes the
	// load send late or drop calls, never trips the admission control.
	probe := startHostLoad(t, out, "probe", "--target", ip+":9090", "--call", "fanout", "--connections", "4",
		"--concurrency", "4", "--rate", "20", "--duration", "10m")
	job, workers := runLoadWorkers(t, out, map[string]string{
		"LOAD_TARGET": "dns:///" + vip, "LOAD_CALL": "fanout", "LOAD_BALANCING": "pick_first",
		"LOAD_CONNECTIONS": "32", "LOAD_REFRESH": "0",
	}, map[string]string{"LOAD_RATE": fmt.Sprint(frontendRate), "LOAD_DURATION": loadFor.String(), "LOAD_CONCURRENCY": "14"})
	peak := tier.peak()
	if peak <= tier.min {
		t.Fatalf("the frontend HPA never scaled above %d pods under %d fan-outs/s (achieved %.0f/s): %s", tier.min, frontendRate, job.sum.Rate, tier)
	}
	down := tier.waitDown(t)
	pst := probe.stop(t)
	tier.stop()
	writePlot(t, out, job, tier, true)
	firsts := writeReport(t, out, "autoscale frontend", job, tier)

	// Every pod that was Ready for the run's last 20 s took calls in them.
	var got []string
	last := job.windows[max(0, len(job.windows)-20):]
	calls := map[string]int64{}
	for _, w := range last {
		for p, n := range w.ByPod {
			calls[p] += n
		}
	}
	end := last[len(last)-1].Start.Add(last[len(last)-1].Length)
	for _, p := range tier.readyThrough(last[0].Start, end) {
		if calls[p] == 0 {
			t.Errorf("frontend pod %s was Ready for the run's last %d s and took no fan-out (by pod: %v)", p, len(last), calls)
		}
		got = append(got, fmt.Sprintf("%s %.0f%%", p, 100*float64(calls[p])/float64(total(calls))))
	}
	if job.sum.Failed+pst.Failed != 0 {
		t.Errorf("fan-outs failed as a whole: load %d %v, probe %d %v", job.sum.Failed, job.sum.ByCode, pst.Failed, pst.ByCode)
	}
	return fmt.Sprintf("%s; %s %.0f fan-outs/s, %d failed, p99 %s; %s; share of the last %d s: %s; down to %d in %.0fs; probe %d fan-outs, %d failed; %s",
		tier.summary(), workers, job.sum.Rate, job.sum.Failed, job.sum.Latency.P99, firsts, len(last), strings.Join(got, ", "), tier.min, down.Seconds(), pst.Sent, pst.Failed, out)
}

// autoscaleClusterIP: one connection through the Deployment backend's
// ClusterIP. Every call lands on the one pod kube-proxy chose; the HPA adds
// pods for that pod's CPU, and a new pod gets its first call only when the
// backend's MaxConnectionAge (30 s, jittered ±10%, + 10 s grace) moves the
// connection and kube-proxy happens to pick it.
func autoscaleClusterIP(t *testing.T, out string) string {
	const sel = "component=backend,controlling=deployment"
	tier := startTier(t, namespace, "backend", "deployment/backend", sel)
	ip, err := serviceIP(namespace, "backend")
	if err != nil {
		t.Fatal(err)
	}
	// bin/load's own report too: the Service's pods from its EndpointSlices
	// (not called through them) and the HPA's decisions. loadFor holds two
	// moves of the connection (at about 30 s and 60 s), so the interval
	// between them is checked, and the pods the HPA added by then are Ready
	// for the second.
	args := []string{"--target", ip + ":9090", "--connections", "1", "--balancing", "pick_first",
		"--rate", fmt.Sprint(pinnedRate), "--concurrency", "64", "--duration", loadFor.String()}
	args = append(args, "--report", filepath.Join(out, "load.html"), "--lifecycle-from", "kubernetes:///backend."+namespace+":grpc",
		"--hpa", namespace+"/backend", "--kubeconfig", kubecfg)
	run := startHostLoad(t, out, "load", args...)
	st := run.wait(t)
	tier.stop()
	writePlot(t, out, st, tier, false)
	firsts := writeReport(t, out, "autoscale clusterip", st, tier)
	if tier.peak() <= tier.min {
		t.Errorf("the backend HPA never scaled above %d pods with one pinned connection at %d calls/s (achieved %.0f/s): %s", tier.min, pinnedRate, st.sum.Rate, tier)
	}

	// Pinned: one pod per window, two where the connection moved.
	var pinned []string
	var moves []time.Time
	first := map[string]time.Time{}
	for _, w := range st.windows {
		pods := slices.Sorted(mapsKeys(w.ByPod))
		if len(pods) > 2 {
			t.Errorf("window at %s: calls on %d pods %v over one ClusterIP connection", w.Start.Format("15:04:05"), len(pods), w.ByPod)
		}
		for _, p := range pods {
			if _, ok := first[p]; !ok {
				first[p] = w.Start
			}
		}
		if len(pods) == 0 {
			continue
		}
		cur := pods[0]
		if len(pods) == 2 && len(pinned) > 0 && pods[0] == pinned[len(pinned)-1] {
			cur = pods[1]
		}
		if len(pinned) == 0 || pinned[len(pinned)-1] != cur {
			pinned = append(pinned, cur)
			moves = append(moves, w.Start)
		}
	}
	// Between moves, at least MaxConnectionAge less its jitter.
	for i := 2; i < len(moves); i++ {
		if d := moves[i].Sub(moves[i-1]); d < 26*time.Second {
			t.Errorf("the connection moved after %v (%s → %s): MaxConnectionAge is 30 s ±10%%", d, pinned[i-1], pinned[i])
		}
	}
	var news []string
	for _, p := range tier.added() {
		ready := tier.readyAt[p]
		if f, ok := first[p]; ok {
			if f.Before(ready.Add(-time.Second)) {
				t.Errorf("new pod %s took calls at %s, before it was Ready at %s", p, f.Format("15:04:05"), ready.Format("15:04:05"))
			}
			news = append(news, fmt.Sprintf("%s first call %.0fs after Ready", p, f.Sub(ready).Seconds()))
		} else {
			news = append(news, fmt.Sprintf("%s no call in %.0fs after Ready", p, st.end().Sub(ready).Seconds()))
		}
	}
	bl := loadReport(t, filepath.Join(out, "load.html"), st.end())
	return fmt.Sprintf("%s; %.0f calls/s on one connection, %d failed; pinned %s; %s; %s; %s; %s",
		tier.summary(), st.sum.Rate, st.sum.Failed, strings.Join(pinned, " → "), strings.Join(news, ", "), firsts,
		bl, out)
}

func mapsKeys(m map[string]int64) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

func total(m map[string]int64) int64 {
	var n int64
	for _, v := range m {
		n += v
	}
	return max(n, 1)
}

// ---- a tier under its autoscaler -----------------------------------------

// tierWatch follows one tier's HPA and Ready pods every second.
type tierWatch struct {
	ns, hpa, workload, sel string
	min                    int
	start                  time.Time

	cancel context.CancelFunc
	done   chan struct{}

	mu      sync.Mutex
	counts  []plot.Count
	events  []plot.Event
	readyAt map[string]time.Time // first Ready, from the API
	goneAt  map[string]time.Time // first poll without the pod Ready
	initial map[string]bool
	desired int
	// decisions are the HPA's, for the report.
	decisions []report.Decision
}

// startTier sets the workload to the HPA's minimum, lets the HPA act (the
// manifests' selectPolicy values, Max up and Min down, with a 10 s
// scale-down window instead of their 180 s and two pods per 10 s instead of
// one per 20 s, so up to four pods may drain at once and the probe sees
// it), and follows it.
// The HPA is held again and the workload set back when the test ends.
func startTier(t *testing.T, ns, hpa, workload, sel string) *tierWatch {
	out, err := kubectl("-n", ns, "get", "hpa", hpa, "-o", "jsonpath={.spec.minReplicas} {.spec.scaleTargetRef.name}")
	if err != nil {
		t.Fatal(err)
	}
	var min int
	var target string
	if _, err := fmt.Sscan(out, &min, &target); err != nil {
		t.Fatalf("hpa %s: %q: %v", hpa, out, err)
	}
	before, err := kubectl("-n", ns, "get", workload, "-o", "jsonpath={.spec.replicas}")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kubectl("-n", ns, "scale", workload, fmt.Sprintf("--replicas=%d", min)); err != nil {
		t.Fatal(err)
	}
	if err := poll.Until(t.Context(), waitLimit, time.Second, workload+" at its minimum", func(context.Context) error {
		ps, err := pods(ns, sel)
		if err != nil {
			return err
		}
		ready, _ := readyPods(ns, sel)
		if len(ps) != min || len(ready) != min {
			return fmt.Errorf("%d pods, %d ready; want %d", len(ps), len(ready), min)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := kubectl("-n", ns, "patch", "hpa", hpa, "--type=json", "-p", `[
		{"op":"add","path":"/spec/behavior/scaleUp/selectPolicy","value":"Max"},
		{"op":"add","path":"/spec/behavior/scaleDown/selectPolicy","value":"Min"},
		{"op":"replace","path":"/spec/behavior/scaleDown/stabilizationWindowSeconds","value":10},
		{"op":"replace","path":"/spec/behavior/scaleDown/policies/0/value","value":2},
		{"op":"replace","path":"/spec/behavior/scaleDown/policies/0/periodSeconds","value":10}]`); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if _, err := kubectl("-n", ns, "patch", "hpa", hpa, "--type=json", "-p", `[
			{"op":"add","path":"/spec/behavior/scaleUp/selectPolicy","value":"Disabled"},
			{"op":"add","path":"/spec/behavior/scaleDown/selectPolicy","value":"Disabled"}]`); err != nil {
			t.Errorf("hold hpa %s again: %v", hpa, err)
		}
		if _, err := kubectl("-n", ns, "scale", workload, "--replicas="+strings.TrimSpace(before)); err != nil {
			t.Errorf("scale %s back: %v", workload, err)
		}
	})
	ctx, cancel := context.WithCancel(context.Background())
	w := &tierWatch{ns: ns, hpa: hpa, workload: workload, sel: sel, min: min, start: time.Now(),
		cancel: cancel, done: make(chan struct{}), readyAt: map[string]time.Time{}, goneAt: map[string]time.Time{},
		initial: map[string]bool{}, desired: min}
	w.poll() // the pods there before the load
	for p := range w.readyAt {
		w.initial[p] = true
	}
	go func() {
		defer close(w.done)
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				w.poll()
			}
		}
	}()
	t.Cleanup(w.stop)
	logf("autoscale: %s/%s lifted (min %d; it was %s replicas)", ns, hpa, min, strings.TrimSpace(before))
	return w
}

type hpaStatus struct {
	Status struct {
		CurrentReplicas int `json:"currentReplicas"`
		DesiredReplicas int `json:"desiredReplicas"`
		CurrentMetrics  []struct {
			Resource struct {
				Current struct {
					AverageUtilization *int `json:"averageUtilization"`
				} `json:"current"`
			} `json:"resource"`
		} `json:"currentMetrics"`
	} `json:"status"`
}

func (w *tierWatch) poll() {
	now := time.Now()
	ready, err := readyPods(w.ns, w.sel)
	if err != nil {
		return // the next second asks again
	}
	var h hpaStatus
	out, err := kubectl("-n", w.ns, "get", "hpa", w.hpa, "-o", "json")
	hpaOK := err == nil && json.Unmarshal([]byte(out), &h) == nil
	w.mu.Lock()
	defer w.mu.Unlock()
	names := map[string]bool{}
	for _, p := range ready {
		names[p.Metadata.Name] = true
		if _, ok := w.readyAt[p.Metadata.Name]; !ok {
			w.readyAt[p.Metadata.Name] = p.readySince()
		}
	}
	for p := range w.readyAt {
		if _, gone := w.goneAt[p]; !gone && !names[p] {
			w.goneAt[p] = now
		}
	}
	if n := len(w.counts); n == 0 || w.counts[n-1].N != len(ready) {
		w.counts = append(w.counts, plot.Count{At: now, N: len(ready)})
	}
	if hpaOK && h.Status.DesiredReplicas != 0 && h.Status.DesiredReplicas != w.desired {
		cpu := ""
		if m := h.Status.CurrentMetrics; len(m) > 0 && m[0].Resource.Current.AverageUtilization != nil {
			cpu = fmt.Sprintf(" at %d%% CPU", *m[0].Resource.Current.AverageUtilization)
		}
		label := fmt.Sprintf("HPA %d→%d%s", w.desired, h.Status.DesiredReplicas, cpu)
		w.events = append(w.events, plot.Event{At: now, Label: label})
		w.decisions = append(w.decisions, report.Decision{At: now, HPA: w.hpa, Current: int32(h.Status.CurrentReplicas),
			Desired: int32(h.Status.DesiredReplicas), Metric: strings.TrimPrefix(cpu, " at ")})
		logf("autoscale: %s: %s after %.0fs", w.hpa, label, now.Sub(w.start).Seconds())
		w.desired = h.Status.DesiredReplicas
	}
}

func (w *tierWatch) stop() {
	w.cancel()
	<-w.done
}

// peak is the most pods Ready at once so far.
func (w *tierWatch) peak() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	for _, c := range w.counts {
		n = max(n, c.N)
	}
	return n
}

// waitDown waits for the tier to be back at its minimum and returns how
// long that took from the call.
func (w *tierWatch) waitDown(t *testing.T) time.Duration {
	t0 := time.Now()
	err := poll.Until(t.Context(), downLimit, time.Second, w.hpa+" back at its minimum", func(context.Context) error {
		w.mu.Lock()
		defer w.mu.Unlock()
		if n := w.counts[len(w.counts)-1].N; n != w.min || w.desired != w.min {
			return fmt.Errorf("%d pods Ready, HPA wants %d", n, w.desired)
		}
		return nil
	})
	if err != nil {
		t.Errorf("after the load: %v", err)
	}
	return time.Since(t0)
}

// added are the pods that became Ready after the tier was lifted, in order.
func (w *tierWatch) added() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	var ps []string
	for p := range w.readyAt {
		if !w.initial[p] {
			ps = append(ps, p)
		}
	}
	slices.SortFunc(ps, func(a, b string) int { return w.readyAt[a].Compare(w.readyAt[b]) })
	return ps
}

// readyThrough are the pods Ready from a to b.
func (w *tierWatch) readyThrough(a, b time.Time) []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	var ps []string
	for p, r := range w.readyAt {
		g, gone := w.goneAt[p]
		if !r.After(a) && (!gone || g.After(b)) {
			ps = append(ps, p)
		}
	}
	slices.Sort(ps)
	return ps
}

// readyAtTime is how many pods were Ready at t.
func (w *tierWatch) readyAtTime(t time.Time) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	for p, r := range w.readyAt {
		g, gone := w.goneAt[p]
		if !r.After(t) && (!gone || g.After(t)) {
			n++
		}
	}
	return n
}

func (w *tierWatch) summary() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	var steps []string
	for _, c := range w.counts {
		steps = append(steps, fmt.Sprintf("%d@%.0fs", c.N, c.At.Sub(w.start).Seconds()))
	}
	return fmt.Sprintf("%s pods Ready %s", w.hpa, strings.Join(steps, " "))
}

func (w *tierWatch) String() string { return w.summary() }

// evenAfterReady says, for each pod added under the load, how long after
// it was Ready the windows' shares were within ±evenWithin of even over
// every pod Ready then; a pod that never got there fails the test.
func evenAfterReady(t *testing.T, windows []*engine.Stats, w *tierWatch) string {
	var out []string
	for _, p := range w.added() {
		ready := w.readyAt[p]
		took := time.Duration(-1)
		for _, win := range windows {
			end := win.Start.Add(win.Length)
			if win.Start.Before(ready) || win.OK == 0 {
				continue
			}
			if end.Sub(ready) > evenLimit {
				break
			}
			n := w.readyAtTime(win.Start)
			if len(win.ByPod) < n || win.ByPod[p] == 0 {
				continue
			}
			even := float64(win.OK) / float64(len(win.ByPod))
			ok := true
			for _, c := range win.ByPod {
				if f := float64(c) / even; f < 1-evenWithin || f > 1+evenWithin {
					ok = false
				}
			}
			if ok {
				took = end.Sub(ready)
				break
			}
		}
		if took < 0 {
			if ready.After(windows[len(windows)-1].Start.Add(-evenLimit)) {
				out = append(out, p+" too late to tell")
				continue
			}
			t.Errorf("pod %s, Ready at %s: the share was not within ±%.0f%% of even over the Ready pods within %v", p, ready.Format("15:04:05"), evenWithin*100, evenLimit)
			out = append(out, p+" never")
			continue
		}
		out = append(out, fmt.Sprintf("%s %.1fs", p, took.Seconds()))
	}
	if len(out) == 0 {
		return "(no new pod)"
	}
	return strings.Join(out, ", ")
}

// ---- load runs -----------------------------------------------------------

// loadRun is a finished run of bin/load: its windows and summary.
type loadRun struct {
	windows []*engine.Stats
	sum     *engine.Stats
}

func (r loadRun) end() time.Time {
	w := r.windows[len(r.windows)-1]
	return w.Start.Add(w.Length)
}

// readRun parses bin/load's JSON lines (other lines, e.g. kubectl's
// interleaved stderr, are skipped) and keeps them in file.
func readRun(t *testing.T, text, file string) loadRun {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
		t.Fatal(err)
	}
	var r loadRun
	var kept []string
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(nil, 4<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "{") {
			continue
		}
		var rec struct {
			Type string `json:"type"`
			engine.Stats
		}
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("%s: %v in %q", file, err, line)
		}
		kept = append(kept, line)
		s := rec.Stats
		switch rec.Type {
		case "window":
			r.windows = append(r.windows, &s)
		case "summary":
			r.sum = &s
		}
	}
	if err := os.WriteFile(file, []byte(strings.Join(kept, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if r.sum == nil || len(r.windows) == 0 {
		t.Fatalf("%s: %d windows and no summary in the load's output:\n%s", file, len(r.windows), tail(text, 20))
	}
	return r
}

// runLoadWorkers drives a tier with 2 load workers on different nodes as one
// test (deploy/components/loadtest/distributed): worker is what they load,
// coordinator the rate over both, the concurrency each, the duration. The
// coordinator's merged windows are read as one bin/load run's; the text
// names the workers, their nodes and the start skew.
func runLoadWorkers(t *testing.T, out string, worker, coordinator map[string]string) (loadRun, string) {
	d := runDistributed(t, filepath.Join(out, "distributed"), distConfig{workers: 2, worker: worker, coordinator: coordinator,
		timeout: loadFor + 4*time.Minute}, nil)
	var nodes []string
	for _, w := range d.sum.WorkerResults {
		nodes = append(nodes, w.Node)
	}
	slices.Sort(nodes)
	if len(nodes) != 2 || nodes[0] == nodes[1] {
		t.Errorf("load workers on %v: want 2 on different nodes", nodes)
	}
	if d.sum.Degraded {
		t.Errorf("a load worker was lost: %+v", d.sum.WorkerResults)
	}
	b, err := os.ReadFile(filepath.Join(out, "distributed", "coordinator.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	run := readRun(t, string(b), filepath.Join(out, "load.jsonl"))
	return run, fmt.Sprintf("2 load workers (%s, start skew %v, %d generator-bound windows)", strings.Join(nodes, ", "), d.sum.StartSkew, d.sum.GeneratorBound)
}

// runLoadJob runs deploy/components/loadtest as a user adds it to an
// overlay (a kustomization with the component, the image tag and an env
// patch), waits for the Job to complete, and reads its JSON lines from
// kubectl logs.
func runLoadJob(t *testing.T, out, name string, env map[string]string) loadRun {
	dir := filepath.Join(work, "loadjob-"+name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	rel, err := filepath.Rel(dir, filepath.Join(repo, "deploy/components/loadtest"))
	if err != nil {
		t.Fatal(err)
	}
	k := fmt.Sprintf(`apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
components:
  - %s
images:
  - name: knowingnode
    newTag: %s
nameSuffix: -%s
patches:
  - patch: |-
      apiVersion: batch/v1
      kind: Job
      metadata: {name: load, namespace: %s}
      spec:
        template:
          spec:
            containers:
              - name: load
                env:
%s
`, rel, strings.TrimPrefix(imageTag, "knowingnode:"), name, namespace, envYAML(env, "                  "))
	if err := os.WriteFile(filepath.Join(dir, "kustomization.yaml"), []byte(k), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := kubectl("apply", "-k", dir); err != nil {
		t.Fatal(err)
	}
	job := "job/load-" + name
	t.Cleanup(func() { kubectl("-n", namespace, "delete", job, "--wait=false") })
	var failed string
	err = poll.Until(t.Context(), loadFor+3*time.Minute, 2*time.Second, job+" to finish", func(context.Context) error {
		out, err := kubectl("-n", namespace, "get", job, "-o", "jsonpath={.status.succeeded}/{.status.failed}")
		if err != nil {
			return err
		}
		ok, bad, _ := strings.Cut(strings.TrimSpace(out), "/")
		if bad != "" && bad != "0" {
			failed = out // no retry (backoffLimit 0): done, badly
			return nil
		}
		if ok != "1" {
			return fmt.Errorf("succeeded/failed %q", out)
		}
		return nil
	})
	if failed != "" {
		err = fmt.Errorf("%s failed (succeeded/failed %s)", job, failed)
	}
	logs, lerr := kubectl("-n", namespace, "logs", job)
	if err != nil {
		t.Fatalf("%v\n%s", err, tail(logs+fmt.Sprint(lerr), 30))
	}
	return readRun(t, logs, filepath.Join(out, "job-"+name+".jsonl"))
}

// hostLoad is bin/load running on the node, writing JSON lines to a file.
type hostLoad struct {
	cmd  *exec.Cmd
	file string
	out  strings.Builder
}

func startHostLoad(t *testing.T, out, name string, args ...string) *hostLoad {
	if err := os.MkdirAll(out, 0o755); err != nil {
		t.Fatal(err)
	}
	h := &hostLoad{file: filepath.Join(out, name+".jsonl")}
	h.cmd = exec.Command(filepath.Join(work, "bin", "load"), append(args, "--window", "1s", "--json", h.file+".tmp")...)
	h.cmd.Stderr = &h.out
	if err := h.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.cmd.Process.Kill(); h.cmd.Wait() })
	return h
}

// stop ends the run with SIGTERM (bin/load then writes its summary) and
// reads it.
func (h *hostLoad) stop(t *testing.T) *engine.Stats {
	h.cmd.Process.Signal(syscall.SIGTERM)
	return h.wait(t).sum
}

func (h *hostLoad) wait(t *testing.T) loadRun {
	if err := h.cmd.Wait(); err != nil {
		t.Errorf("bin/load: %v\n%s", err, tail(h.out.String(), 20))
	}
	b, err := os.ReadFile(h.file + ".tmp")
	if err != nil {
		t.Fatal(err)
	}
	os.Remove(h.file + ".tmp")
	return readRun(t, string(b), h.file)
}

func writePlot(t *testing.T, out string, r loadRun, w *tierWatch, backends bool) {
	w.mu.Lock()
	sc := plot.Scaling{Replicas: []plot.Replicas{{Tier: w.hpa, Points: slices.Clone(w.counts)}}, Events: slices.Clone(w.events)}
	w.mu.Unlock()
	if err := plot.WriteScalingPNG(filepath.Join(out, "run.png"), r.windows, r.sum, backends, sc); err != nil {
		t.Errorf("plot: %v", err)
	}
}
