package dist

import (
	"fmt"
	"maps"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
	"google.golang.org/protobuf/types/known/durationpb"

	knowingnodev1 "github.com/knowingnode/knowingnode/gen/knowingnode/v1"
	"github.com/knowingnode/knowingnode/internal/load/engine"
)

// The engine's histogram geometry: 1 µs to 1 h at 3 significant digits.
// Every worker records with it, so merging loses nothing.
const (
	histMin     = 1
	histMax     = int64(time.Hour / time.Microsecond)
	histSigFigs = 3
)

func newHist() *hdrhistogram.Histogram { return hdrhistogram.New(histMin, histMax, histSigFigs) }

// Window is one merged window: a single run's window (same JSON shape as
// bin/load's), plus how many workers it merges and what the run lost.
type Window struct {
	*engine.Stats
	Index int `json:"index"`
	// Workers is how many workers reported this window, of Expected started.
	Workers  int `json:"workers"`
	Expected int `json:"expectedWorkers"`
	// Missing is the calls the lost workers' shares scheduled in this
	// window, which the run does not count: never sent, or sent and never
	// reported. Degraded is set from a worker's loss on.
	Missing  int64 `json:"missing,omitempty"`
	Degraded bool  `json:"degraded,omitempty"`
	// MaxWorkerCPU is the busiest worker's CPU use, in cores of its
	// Cores. GeneratorBound marks a window where the load, not the tier,
	// was the bottleneck: more than 1% of the calls late or dropped, or a
	// worker at 90% of its cores.
	MaxWorkerCPU   float64 `json:"maxWorkerCPU"`
	GeneratorBound bool    `json:"generatorBound,omitempty"`
}

// part is one worker's window. A window off the wire keeps its histogram
// packed (only the populated buckets): decoding and merging it then costs
// what it holds, not the whole 1 µs..1 h range.
type part struct {
	stats  *engine.Stats
	packed *hdrhistogram.PackedHistogram
	cpu    float64 // cores used
	cores  float64 // cores the worker may use
}

// generatorBound reports whether the worker, not the tier, held the rate back.
func (p part) generatorBound() bool {
	s := p.stats
	if n := s.Sent + s.Dropped; n > 0 && (s.Late+s.Dropped)*100 > n {
		return true
	}
	return p.cores > 0 && p.cpu >= 0.9*p.cores
}

// mergeStats adds parts up: counts are summed, latency histograms merged,
// and the quantiles read from the merged histogram, never averaged. start
// and length are the window's; elapsed is how far into the run it ends.
func mergeStats(parts []*engine.Stats, packed []*hdrhistogram.PackedHistogram, start time.Time, length, elapsed time.Duration) *engine.Stats {
	m := &engine.Stats{Start: start, Length: length, Elapsed: elapsed, Hist: newHist(),
		ByCode: map[string]int64{}, ByPod: map[string]int64{}, ByNode: map[string]int64{}, ByZone: map[string]int64{},
		PodNode: map[string]string{}, BackendByPod: map[string]int64{}, BackendByNode: map[string]int64{},
		BackendByZone: map[string]int64{}, BackendByCode: map[string]int64{}}
	for _, p := range parts {
		m.Sent += p.Sent
		m.Late += p.Late
		m.Dropped += p.Dropped
		m.OK += p.OK
		m.Failed += p.Failed
		for _, pair := range []struct{ to, from map[string]int64 }{
			{m.ByCode, p.ByCode}, {m.ByPod, p.ByPod}, {m.ByNode, p.ByNode}, {m.ByZone, p.ByZone},
			{m.BackendByPod, p.BackendByPod}, {m.BackendByNode, p.BackendByNode},
			{m.BackendByZone, p.BackendByZone}, {m.BackendByCode, p.BackendByCode},
		} {
			addBounded(pair.to, pair.from)
		}
		for pod, node := range p.PodNode {
			if _, ok := m.ByPod[pod]; ok {
				m.PodNode[pod] = node
			}
		}
		if p.Hist != nil {
			m.Hist.Merge(p.Hist)
		}
	}
	for _, p := range packed {
		p.MergeInto(m.Hist)
	}
	if length > 0 {
		m.Rate = float64(m.Sent) / length.Seconds()
	}
	if m.Hist.TotalCount() > 0 {
		q := func(p float64) time.Duration { return time.Duration(m.Hist.ValueAtQuantile(p)) * time.Microsecond }
		m.Latency = engine.Latency{P50: q(50), P90: q(90), P99: q(99), Max: time.Duration(m.Hist.Max()) * time.Microsecond}
	}
	return m
}

// addBounded adds from into to, keeping at most engine.MaxKeys names as
// each worker does: further names count under engine.Other.
func addBounded(to, from map[string]int64) {
	for k, n := range from {
		if _, ok := to[k]; !ok && len(to) >= engine.MaxKeys {
			k = engine.Other
		}
		to[k] += n
	}
}

// encodeWindow turns a worker's window into its wire form.
func encodeWindow(index int, s *engine.Stats, cpu, cores float64) (*knowingnodev1.WorkerWindow, error) {
	w := &knowingnodev1.WorkerWindow{
		Index: int32(index), Length: durationpb.New(s.Length),
		Sent: s.Sent, Late: s.Late, Dropped: s.Dropped, Ok: s.OK, Failed: s.Failed,
		ByCode: s.ByCode, ByPod: s.ByPod, ByNode: s.ByNode, ByZone: s.ByZone, PodNode: s.PodNode,
		BackendByPod: s.BackendByPod, BackendByNode: s.BackendByNode, BackendByZone: s.BackendByZone, BackendByCode: s.BackendByCode,
		Cpu: cpu, Cores: cores,
	}
	if s.Hist != nil && s.Hist.TotalCount() > 0 {
		b, err := s.Hist.Encode(hdrhistogram.V2CompressedEncodingCookieBase)
		if err != nil {
			return nil, fmt.Errorf("encode window %d's histogram: %w", index, err)
		}
		w.Histogram = b
	}
	return w, nil
}

// decodeWindow turns a worker's window back into a part, refusing a
// histogram of another geometry: merging it would not be exact.
func decodeWindow(w *knowingnodev1.WorkerWindow) (part, error) {
	s := &engine.Stats{
		Length: w.GetLength().AsDuration(),
		Sent:   w.GetSent(), Late: w.GetLate(), Dropped: w.GetDropped(), OK: w.GetOk(), Failed: w.GetFailed(),
		ByCode: maps.Clone(w.GetByCode()), ByPod: maps.Clone(w.GetByPod()), ByNode: maps.Clone(w.GetByNode()),
		ByZone: maps.Clone(w.GetByZone()), PodNode: maps.Clone(w.GetPodNode()),
		BackendByPod: maps.Clone(w.GetBackendByPod()), BackendByNode: maps.Clone(w.GetBackendByNode()),
		BackendByZone: maps.Clone(w.GetBackendByZone()), BackendByCode: maps.Clone(w.GetBackendByCode()),
	}
	p := part{stats: s, cpu: w.GetCpu(), cores: w.GetCores()}
	if b := w.GetHistogram(); len(b) > 0 {
		h, err := hdrhistogram.DecodePacked(b)
		if err != nil {
			return part{}, fmt.Errorf("window %d: histogram: %w", w.GetIndex(), err)
		}
		if err := checkGeometry(h.LowestTrackableValue(), h.HighestTrackableValue(), h.SignificantFigures()); err != nil {
			return part{}, fmt.Errorf("window %d: %w", w.GetIndex(), err)
		}
		p.packed = h
	}
	return p, nil
}

// checkGeometry refuses a histogram of another geometry than the
// engine's: merging it would not be exact.
func checkGeometry(low, high, digits int64) error {
	if low != histMin || high != histMax || digits != histSigFigs {
		return fmt.Errorf("histogram covers %d..%d µs at %d digits, want %d..%d at %d", low, high, digits, histMin, histMax, histSigFigs)
	}
	return nil
}

func decodeHist(b []byte) (*hdrhistogram.Histogram, error) {
	h, err := hdrhistogram.Decode(b)
	if err != nil {
		return nil, fmt.Errorf("histogram: %w", err)
	}
	if err := checkGeometry(h.LowestTrackableValue(), h.HighestTrackableValue(), h.SignificantFigures()); err != nil {
		return nil, err
	}
	return h, nil
}
