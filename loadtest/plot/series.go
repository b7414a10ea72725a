package plot

import (
	"io"
	"time"

	"github.com/knowingnode/knowingnode/internal/load/engine"
)

// MaxPoints bounds the points a Series keeps: a 20 cm panel shows no more.
const MaxPoints = 1024

// Series keeps a run's windows for drawing in memory that does not grow
// with the run's length. It keeps only what the panels draw (rate,
// failures, latency quantiles, calls by pod and by backend pod, the pods
// interned once), about 100 bytes plus 8 per pod a point. Up to MaxPoints
// windows it keeps them as they came; past that, neighbours are merged in
// pairs, and from then on every point stands for Span windows. A merged
// point sums the counts exactly and takes, for each latency quantile, the
// highest of its windows' (window quantiles cannot be merged without their
// histograms, and an average would hide a spike); the latency panel says so.
type Series struct {
	pods, backendPods names
	points            []point
	span              int // windows per point
	pending           *point
	pendN             int
}

// point is one drawn window, or several merged.
type point struct {
	start           time.Time
	elapsed, length time.Duration
	sent, failed    int64
	lat             engine.Latency
	byPod, byBack   []int64   // by index into Series.pods, backendPods
	load            []loadSum // by index into Series.pods: the pods' ORCA reports
}

// loadSum is what the load panel draws of a pod's reports, summed over
// them so that merged points are means weighted by reports.
type loadSum struct {
	reports          int64
	cpu, app, wshare float64 // each times reports
}

// names interns pod names, at most engine.MaxKeys; further ones count
// under engine.Other, as the engine's own maps do.
type names struct {
	list  []string
	index map[string]int
}

func (n *names) id(name string) int {
	if i, ok := n.index[name]; ok {
		return i
	}
	if len(n.list) >= engine.MaxKeys {
		name = engine.Other
		if i, ok := n.index[name]; ok {
			return i
		}
	}
	if n.index == nil {
		n.index = map[string]int{}
	}
	n.index[name] = len(n.list)
	n.list = append(n.list, name)
	return len(n.list) - 1
}

func (n *names) counts(m map[string]int64) []int64 {
	var c []int64
	for name, v := range m {
		i := n.id(name)
		if i >= len(c) {
			c = append(c, make([]int64, i+1-len(c))...)
		}
		c[i] += v
	}
	return c
}

func (n *names) toMap(c []int64) map[string]int64 {
	m := make(map[string]int64, len(c))
	for i, v := range c {
		if v != 0 {
			m[n.list[i]] += v
		}
	}
	return m
}

// Add keeps w (or merges it into the last point).
func (s *Series) Add(w *engine.Stats) {
	if s.span == 0 {
		s.span = 1
	}
	p := point{start: w.Start, elapsed: w.Elapsed, length: w.Length, sent: w.Sent, failed: w.Failed, lat: w.Latency,
		byPod: s.pods.counts(w.ByPod), byBack: s.backendPods.counts(w.BackendByPod), load: s.loads(w.LoadByPod)}
	if s.pending == nil {
		s.pending, s.pendN = &p, 1
	} else {
		m := merge(*s.pending, p)
		s.pending, s.pendN = &m, s.pendN+1
	}
	if s.pendN < s.span {
		return
	}
	s.points = append(s.points, *s.pending)
	s.pending, s.pendN = nil, 0
	if len(s.points) < MaxPoints {
		return
	}
	half := s.points[:0]
	for i := 0; i+1 < len(s.points); i += 2 {
		half = append(half, merge(s.points[i], s.points[i+1]))
	}
	clear(s.points[len(half):])
	s.points = half
	s.span *= 2
}

// Windows are the points kept, with a partly filled last one, as the
// Stats the panels draw: only their time, rate, failures, latency, calls by
// pod and by backend pod, and the pods' reported load (utilization and
// weight share, means over the reports) are filled.
func (s *Series) Windows() []*engine.Stats {
	ps := s.points
	if s.pending != nil {
		ps = append(ps[:len(ps):len(ps)], *s.pending)
	}
	ws := make([]*engine.Stats, len(ps))
	for i, p := range ps {
		w := &engine.Stats{Start: p.start, Elapsed: p.elapsed, Length: p.length, Sent: p.sent, Failed: p.failed, Latency: p.lat,
			ByPod: s.pods.toMap(p.byPod), BackendByPod: s.backendPods.toMap(p.byBack), LoadByPod: s.loadMap(p.load)}
		if p.length > 0 {
			w.Rate = float64(p.sent) / p.length.Seconds()
		}
		ws[i] = w
	}
	return ws
}

// Span is how many windows a point stands for (1 until the first merge).
func (s *Series) Span() int { return max(s.span, 1) }

// WritePNG draws the series and the run's summary to w, as WritePNG does.
func (s *Series) WritePNG(w io.Writer, sum *engine.Stats, backends bool) error {
	panels, err := runPanels(s.Windows(), sum, backends, s.Span())
	if err != nil {
		return err
	}
	return renderTo(w, panels)
}

// merge is the point from a's start to b's end.
func merge(a, b point) point {
	return point{
		start: a.start, elapsed: b.elapsed, length: a.length + b.length,
		sent: a.sent + b.sent, failed: a.failed + b.failed,
		lat: engine.Latency{
			P50: max(a.lat.P50, b.lat.P50), P90: max(a.lat.P90, b.lat.P90),
			P99: max(a.lat.P99, b.lat.P99), Max: max(a.lat.Max, b.lat.Max),
		},
		byPod: add(a.byPod, b.byPod), byBack: add(a.byBack, b.byBack), load: addLoads(a.load, b.load),
	}
}

// loads interns the pods of a window's load reports.
func (s *Series) loads(m map[string]*engine.PodLoad) []loadSum {
	var c []loadSum
	for pod, l := range m {
		i := s.pods.id(pod)
		if i >= len(c) {
			c = append(c, make([]loadSum, i+1-len(c))...)
		}
		n := float64(l.Reports)
		c[i].reports += l.Reports
		c[i].cpu += n * l.CPUUtilization
		c[i].app += n * l.ApplicationUtilization
		c[i].wshare += n * l.WeightShare
	}
	return c
}

// loadMap is the means of c, by pod; nil when no pod reported.
func (s *Series) loadMap(c []loadSum) map[string]*engine.PodLoad {
	var m map[string]*engine.PodLoad
	for i, l := range c {
		if l.reports == 0 {
			continue
		}
		if m == nil {
			m = map[string]*engine.PodLoad{}
		}
		n := float64(l.reports)
		m[s.pods.list[i]] = &engine.PodLoad{Reports: l.reports, CPUUtilization: l.cpu / n, ApplicationUtilization: l.app / n, WeightShare: l.wshare / n}
	}
	return m
}

// addLoads sums two load vectors into a new one.
func addLoads(a, b []loadSum) []loadSum {
	if len(a) < len(b) {
		a, b = b, a
	}
	if len(a) == 0 {
		return nil
	}
	c := make([]loadSum, len(a))
	copy(c, a)
	for i, v := range b {
		c[i].reports += v.reports
		c[i].cpu += v.cpu
		c[i].app += v.app
		c[i].wshare += v.wshare
	}
	return c
}

// add sums two count vectors into a new one.
func add(a, b []int64) []int64 {
	if len(a) < len(b) {
		a, b = b, a
	}
	if len(a) == 0 {
		return nil
	}
	c := make([]int64, len(a))
	copy(c, a)
	for i, v := range b {
		c[i] += v
	}
	return c
}
