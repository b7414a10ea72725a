package dist

import (
	"context"
	"fmt"
	"maps"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	knowingnodev1 "github.com/knowingnode/knowingnode/gen/knowingnode/v1"
	"github.com/knowingnode/knowingnode/harness/loopbackpods"
	"github.com/knowingnode/knowingnode/internal/load/calls"
	"github.com/knowingnode/knowingnode/internal/load/engine"
)

// fleet is n in-process workers, each with its own connections to the
// loopback pods (as separate processes would have), and the windows each
// worker recorded before encoding them.
type fleet struct {
	addrs   []string
	servers []*grpc.Server
	mu      sync.Mutex
	lines   []WorkerLine
	hold    map[string]int // worker name -> first window index whose report blocks
	release chan struct{}
	last    map[string]time.Time // worker name -> when it last started a call
	kill    map[string]int       // worker name -> the window index after whose report its server stops
}

func startFleet(t *testing.T, n int, pods []string, port uint16) *fleet {
	t.Helper()
	f := &fleet{hold: map[string]int{}, release: make(chan struct{}), last: map[string]time.Time{}, kill: map[string]int{}}
	t.Cleanup(func() { close(f.release) })
	for i := range n {
		var conns []grpc.ClientConnInterface
		for _, ip := range pods {
			cc, err := grpc.NewClient(fmt.Sprintf("%s:%d", ip, port), grpc.WithTransportCredentials(insecure.NewCredentials()))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { cc.Close() })
			conns = append(conns, cc)
		}
		name := fmt.Sprintf("worker-%d", i)
		identity := calls.Identity(conns...)
		call := func(ctx context.Context) (engine.Result, error) {
			f.mu.Lock()
			f.last[name] = time.Now()
			f.mu.Unlock()
			return identity(ctx)
		}
		w := NewWorker(WorkerOptions{Name: name, Node: fmt.Sprintf("node-%d", i%2),
			Targets: map[string]engine.Caller{"backends": call},
			OnWindow: func(l WorkerLine) {
				f.mu.Lock()
				f.lines = append(f.lines, l)
				k, held := f.hold[name]
				if kk, ok := f.kill[name]; ok && l.Index == kk {
					go f.servers[i].Stop() // killed: its connections drop
				}
				f.mu.Unlock()
				if held && l.Index >= k {
					<-f.release // a worker that hangs: it stops reporting
				}
			}})
		lis, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		srv := grpc.NewServer()
		knowingnodev1.RegisterLoadWorkerServiceServer(srv, w)
		go srv.Serve(lis)
		t.Cleanup(srv.Stop)
		f.addrs = append(f.addrs, lis.Addr().String())
		f.servers = append(f.servers, srv)
	}
	return f
}

func (f *fleet) find(context.Context) ([]string, error) { return f.addrs, nil }

func (f *fleet) byWorker() map[string][]WorkerLine {
	f.mu.Lock()
	defer f.mu.Unlock()
	m := map[string][]WorkerLine{}
	for _, l := range f.lines {
		m[l.Worker] = append(m[l.Worker], l)
	}
	return m
}

func run(t *testing.T, cfg Config, find func(context.Context) ([]string, error)) (*Result, []*Window, error) {
	t.Helper()
	c, err := NewCoordinator(cfg, find)
	if err != nil {
		t.Fatal(err)
	}
	var windows []*Window
	res, err := c.Run(t.Context(), func(w *Window) { windows = append(windows, w) })
	return res, windows, err
}

// baseConfig is a short run; its grace is generous (the machine running the
// tests may be saturated, and a window later than the grace loses its
// worker). A generous grace costs nothing while every worker reports.
func baseConfig(workers int) Config {
	return Config{Target: "backends", Workers: workers, ReadyTimeout: 10 * time.Second, StartDelay: 300 * time.Millisecond, Grace: 10 * time.Second,
		Engine: engine.Config{Rate: 300, Concurrency: 20, Duration: 2 * time.Second, Window: 500 * time.Millisecond, Timeout: 2 * time.Second}}
}

// N workers over real loopback backends: the merged counts are the sums of
// every worker's counts, and the merged quantiles are those of the union of
// every worker's latencies (HdrHistogram merges exactly).
func TestMergedEqualsWorkersUnion(t *testing.T) {
	pods, port := loopbackpods.Start(t, 4, 41, "backend")
	f := startFleet(t, 3, pods, port)
	res, windows, err := run(t, baseConfig(3), f.find)
	if err != nil {
		t.Fatal(err)
	}
	sum := res.Summary
	union := newHist()
	var sent, ok int64
	byCode, byPod := map[string]int64{}, map[string]int64{}
	perIndex := map[int]int64{}
	for name, ls := range f.byWorker() {
		if len(ls) < 4 {
			t.Errorf("%s reported %d windows", name, len(ls))
		}
		for _, l := range ls {
			union.Merge(l.Stats.Hist)
			sent += l.Sent
			ok += l.OK
			perIndex[l.Index] += l.Sent
			for k, n := range l.ByCode {
				byCode[k] += n
			}
			for k, n := range l.ByPod {
				byPod[k] += n
			}
		}
	}
	if sum.Sent != sent || sum.OK != ok || !maps.Equal(sum.ByCode, byCode) || !maps.Equal(sum.ByPod, byPod) {
		t.Errorf("merged sent %d ok %d codes %v pods %v; the workers' sums: %d %d %v %v", sum.Sent, sum.OK, sum.ByCode, sum.ByPod, sent, ok, byCode, byPod)
	}
	q := func(p float64) time.Duration { return time.Duration(union.ValueAtQuantile(p)) * time.Microsecond }
	if sum.Latency.P50 != q(50) || sum.Latency.P99 != q(99) || sum.Latency.Max != time.Duration(union.Max())*time.Microsecond {
		t.Errorf("merged p50 %v p99 %v max %v; union of the workers' latencies %v %v %v", sum.Latency.P50, sum.Latency.P99, sum.Latency.Max, q(50), q(99), union.Max())
	}
	for _, w := range windows {
		if w.Sent != perIndex[w.Index] || w.Index < 4 && w.Workers != 3 {
			t.Errorf("window %d: %d sent by %d workers; the workers sent %d", w.Index, w.Sent, w.Workers, perIndex[w.Index])
		}
	}
	// Every call due is sent or counted dropped; and when no window was
	// generator-bound (a saturated test machine), nearly all are sent.
	if r := float64(sum.Sent+sum.Dropped) / 600; r < 0.97 || r > 1.02 {
		t.Errorf("sent %d and dropped %d of the 600 asked (%.3f)", sum.Sent, sum.Dropped, r)
	}
	if r := float64(sum.Sent) / 600; res.GeneratorBound == 0 && (r < 0.97 || r > 1.02) {
		t.Errorf("sent %d of the 600 asked (%.3f), no window generator-bound", sum.Sent, r)
	}
	if len(byPod) != 4 || res.Degraded || res.Started != 3 || res.Note != "" {
		t.Errorf("pods %v, degraded %v, started %d, note %q", byPod, res.Degraded, res.Started, res.Note)
	}
	if res.StartSkew <= 0 || res.StartSkew > time.Second {
		t.Errorf("start skew %v", res.StartSkew)
	}
	t.Logf("3 workers: sent %d (%.1f/s of 300), p50 %v p99 %v, start skew %v", sum.Sent, sum.Rate, sum.Latency.P50, sum.Latency.P99, res.StartSkew)
}

// Merging encoded windows gives the quantiles of the union of the raw
// latencies, within the histogram's precision (3 significant digits).
func TestMergeRawLatencies(t *testing.T) {
	var raw []int64
	var packed []*hdrhistogram.PackedHistogram
	seed := uint64(7)
	for w := range 5 {
		h := newHist()
		for range 1000 + 337*w {
			seed = seed*6364136223846793005 + 1442695040888963407
			v := int64(50 + (seed>>33)%uint64(2000*(w+1))) // µs; each worker its own spread
			if seed%97 == 0 {
				v *= 100 // a tail
			}
			raw = append(raw, v)
			h.RecordValue(v)
		}
		ww, err := encodeWindow(0, &engine.Stats{Hist: h, Sent: h.TotalCount()}, 0, 1)
		if err != nil {
			t.Fatal(err)
		}
		p, err := decodeWindow(ww)
		if err != nil {
			t.Fatal(err)
		}
		packed = append(packed, p.packed)
	}
	m := mergeStats(nil, packed, time.Time{}, time.Second, time.Second)
	slices.Sort(raw)
	exact := func(p float64) int64 {
		rank := int(p/100*float64(len(raw))+0.5) - 1
		return raw[max(0, min(rank, len(raw)-1))]
	}
	for _, tc := range []struct {
		p   float64
		got time.Duration
	}{{50, m.Latency.P50}, {90, m.Latency.P90}, {99, m.Latency.P99}, {100, m.Latency.Max}} {
		want := exact(tc.p)
		got := int64(tc.got / time.Microsecond)
		if diff := got - want; diff < -want/1000-1 || diff > want/1000+1 {
			t.Errorf("p%g: merged %d µs, raw union %d µs", tc.p, got, want)
		}
	}
	if m.Hist.TotalCount() != int64(len(raw)) {
		t.Errorf("merged %d latencies, want %d", m.Hist.TotalCount(), len(raw))
	}
}

// A worker killed mid-run is seen within two windows; the run ends on
// time, degraded, naming it and its missing share, and counts nothing twice.
func TestLostWorker(t *testing.T) {
	pods, port := loopbackpods.Start(t, 2, 51, "backend")
	for _, how := range []string{"killed", "silent"} {
		t.Run(how, func(t *testing.T) {
			f := startFleet(t, 3, pods, port)
			cfg := baseConfig(3)
			cfg.Engine.Duration = 6 * time.Second
			cfg.Grace = 3 * time.Second
			if how == "silent" {
				f.hold["worker-1"] = 1 // it hangs after sending window 1
			} else {
				f.kill["worker-1"] = 1 // killed once it has reported window 1
			}
			began := time.Now()
			res, windows, err := run(t, cfg, f.find)
			took := time.Since(began)
			if err != nil {
				t.Fatal(err)
			}
			// On time: the duration, plus the start delay, a grace and slack.
			if limit := cfg.Engine.Duration + cfg.StartDelay + cfg.Grace + 2*time.Second; took > limit {
				t.Errorf("run took %v, more than %v", took, limit)
			}
			var lost *WorkerResult
			for i := range res.Workers {
				if res.Workers[i].Lost {
					if lost != nil {
						t.Fatalf("two workers lost: %+v", res.Workers)
					}
					lost = &res.Workers[i]
				}
			}
			if lost == nil || lost.Name != "worker-1" || !res.Degraded || !res.Summary.Degraded {
				t.Fatalf("want worker-1 lost and the run degraded: %+v", res)
			}
			// Killed after reporting window 1 (1 s): its stream breaks at
			// once. Silent after window 1: window 2 ends at 1.5 s, and it is
			// lost a grace later.
			if lost.LostAt < 800*time.Millisecond || lost.LostAt > 2*time.Second+cfg.Grace+time.Second {
				t.Errorf("lost at %v (%s)", lost.LostAt, lost.LostReason)
			}
			// Its share is 100/s: from 1 s to 6 s, 500 calls missing (550
			// if window 1's report was cut); never more than its 600.
			if lost.Missing < 350 || lost.Missing > 600 || res.Summary.Missing != lost.Missing {
				t.Errorf("missing %d (summary %d), want about 400-550", lost.Missing, res.Summary.Missing)
			}
			// No double count: the merge holds exactly the windows it says.
			lines := f.byWorker()
			var merged int64
			for _, w := range res.Workers {
				merged += w.Sent
				var all int64
				for _, l := range lines[w.Name][:w.Windows] {
					all += l.Sent
				}
				if all != w.Sent {
					t.Errorf("%s: merged %d sent in %d windows; its first %d windows sent %d", w.Name, w.Sent, w.Windows, w.Windows, all)
				}
			}
			if merged != res.Summary.Sent {
				t.Errorf("summary sent %d; the workers' merged windows %d", res.Summary.Sent, merged)
			}
			// The duration's last window (a tail after it holds only the
			// calls still in flight, from the workers that had some).
			if len(windows) < 12 {
				t.Fatalf("%d windows, want 12", len(windows))
			}
			if last := windows[11]; !last.Degraded || last.Workers != 2 || last.Missing == 0 {
				t.Errorf("last window: %d workers, degraded %v, missing %d", last.Workers, last.Degraded, last.Missing)
			}
			// A lost worker is told to stop (its stream is closed): it
			// sends no call well after it was lost, though it could have
			// gone on to the end of the run.
			f.mu.Lock()
			last := f.last[lost.Name]
			f.mu.Unlock()
			if stopBy := res.T0.Add(lost.LostAt + 800*time.Millisecond); last.After(stopBy) {
				t.Errorf("%s sent a call %v after it was lost", lost.Name, last.Sub(res.T0.Add(lost.LostAt)))
			}
			t.Logf("%s: %s lost at %v (%s), %d missing; took %v", how, lost.Name, lost.LostAt, lost.LostReason, lost.Missing, took.Round(time.Millisecond))
		})
	}
}

func TestReadyPolicy(t *testing.T) {
	pods, port := loopbackpods.Start(t, 1, 61, "backend")
	f := startFleet(t, 2, pods, port)
	cfg := baseConfig(3)
	cfg.ReadyTimeout = time.Second
	cfg.Engine.Duration = time.Second
	_, _, err := run(t, cfg, f.find)
	if err == nil || !strings.Contains(err.Error(), "2 of 3 workers ready") {
		t.Errorf("abort: %v", err)
	}
	cfg.ReadyPolicy = ReadyPartial
	res, _, err := run(t, cfg, f.find)
	if err != nil || res.Started != 2 || !strings.Contains(res.Note, "started with 2") || res.Summary.Sent < 200 {
		t.Errorf("partial: %v, %+v", err, res)
	}
	// A worker never loads a target it was not configured with.
	cfg = baseConfig(2)
	cfg.ReadyTimeout = time.Second
	cfg.Target = "elsewhere"
	_, _, err = run(t, cfg, f.find)
	if err == nil || !strings.Contains(err.Error(), `target "elsewhere" is not one this worker was configured with`) {
		t.Errorf("unknown target: %v", err)
	}
}
