package plot

import (
	"io"
	"maps"

	"github.com/knowingnode/knowingnode/internal/load/engine"
)

// MaxPoints bounds the points a Series keeps: a 20 cm panel shows no more.
const MaxPoints = 1024

// Series keeps a run's windows for drawing in memory that does not grow
// with the run's length. Up to MaxPoints windows it keeps them as they
// came; past that, neighbours are merged in pairs, and from then on every
// point stands for Span windows. A merged point sums the counts exactly
// (calls, codes, pods) and takes, for each latency quantile, the highest of
// its windows' (window quantiles cannot be merged without their
// histograms, and an average would hide a spike); the latency panel says so.
type Series struct {
	points  []*engine.Stats
	span    int // windows per point
	pending *engine.Stats
	pendN   int
}

// Add keeps w (or merges it into the last point).
func (s *Series) Add(w *engine.Stats) {
	if s.span == 0 {
		s.span = 1
	}
	if s.pending == nil {
		s.pending, s.pendN = w, 1
	} else {
		s.pending, s.pendN = merge(s.pending, w), s.pendN+1
	}
	if s.pendN < s.span {
		return
	}
	s.points = append(s.points, s.pending)
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

// Windows are the points kept, with a partly filled last one.
func (s *Series) Windows() []*engine.Stats {
	if s.pending == nil {
		return s.points
	}
	return append(s.points[:len(s.points):len(s.points)], s.pending)
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

// merge is the window from a's start to b's end.
func merge(a, b *engine.Stats) *engine.Stats {
	m := *a
	m.Elapsed = b.Elapsed
	m.Length = a.Length + b.Length
	m.Sent += b.Sent
	m.Late += b.Late
	m.Dropped += b.Dropped
	m.OK += b.OK
	m.Failed += b.Failed
	m.Draining += b.Draining
	if m.Length > 0 {
		m.Rate = float64(m.Sent) / m.Length.Seconds()
	}
	m.RequestedRate = max(a.RequestedRate, b.RequestedRate)
	m.Latency = engine.Latency{
		P50: max(a.Latency.P50, b.Latency.P50), P90: max(a.Latency.P90, b.Latency.P90),
		P99: max(a.Latency.P99, b.Latency.P99), Max: max(a.Latency.Max, b.Latency.Max),
	}
	m.ByCode = sum(a.ByCode, b.ByCode)
	m.ByPod = sum(a.ByPod, b.ByPod)
	m.ByNode = sum(a.ByNode, b.ByNode)
	m.ByZone = sum(a.ByZone, b.ByZone)
	m.BackendByPod = sum(a.BackendByPod, b.BackendByPod)
	m.BackendByNode = sum(a.BackendByNode, b.BackendByNode)
	m.BackendByZone = sum(a.BackendByZone, b.BackendByZone)
	m.BackendByCode = sum(a.BackendByCode, b.BackendByCode)
	m.PodNode = maps.Clone(a.PodNode)
	for p, n := range b.PodNode {
		if _, ok := m.PodNode[p]; ok || len(m.PodNode) < engine.MaxKeys {
			if m.PodNode == nil {
				m.PodNode = map[string]string{}
			}
			m.PodNode[p] = n
		}
	}
	return &m
}

// sum adds two count maps, holding at most engine.MaxKeys names as the
// engine does: further ones count under engine.Other.
func sum(a, b map[string]int64) map[string]int64 {
	if len(a) == 0 && len(b) == 0 {
		return a
	}
	m := make(map[string]int64, max(len(a), len(b)))
	for _, src := range []map[string]int64{a, b} {
		for k, n := range src {
			if _, ok := m[k]; !ok && len(m) >= engine.MaxKeys {
				k = engine.Other
			}
			m[k] += n
		}
	}
	return m
}
