package dist

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/knowingnode/knowingnode/internal/load/engine"
)

// DefaultMaxStartGap is how far apart the workers' t0 may be for their
// files to merge: the e2e's bound on start skew.
const DefaultMaxStartGap = 100 * time.Millisecond

// maxLine bounds one JSON line of a worker's file (a window with its
// histogram and up to engine.MaxKeys names per map).
const maxLine = 4 << 20

// ReadWorkerLines reads a worker's JSON lines (bin/load worker --json),
// skipping lines of other kinds (a pod log may hold other lines) but
// refusing a file with no worker window at all.
func ReadWorkerLines(name string, r io.Reader) ([]WorkerLine, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(nil, maxLine)
	var ls []WorkerLine
	for n := 1; sc.Scan(); n++ {
		var probe struct{ Type string }
		if json.Unmarshal(sc.Bytes(), &probe) != nil || probe.Type != "worker-window" {
			continue
		}
		var l WorkerLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			return nil, fmt.Errorf("%s line %d: %w", name, n, err)
		}
		if l.Stats == nil {
			l.Stats = &engine.Stats{}
		}
		if l.Hist != "" {
			h, err := decodeHist([]byte(l.Hist))
			if err != nil {
				return nil, fmt.Errorf("%s line %d: %w", name, n, err)
			}
			l.Stats.Hist = h
		}
		ls = append(ls, l)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if len(ls) == 0 {
		return nil, fmt.Errorf("%s holds no worker window: merge reads the JSON lines of bin/load worker --json", name)
	}
	return ls, nil
}

// MergeFiles merges the windows of one run's workers, one file each (by
// name), as the coordinator would have. It refuses files of different
// runs, or of the same worker twice, or whose starts lie more than maxGap
// apart (their windows would not line up: vegeta's trap). A worker with
// no file is reported lost, its share missing.
func MergeFiles(files map[string][]WorkerLine, maxGap time.Duration) (*Result, []*Window, error) {
	names := slices.Sorted(func(yield func(string) bool) {
		for n := range files {
			if !yield(n) {
				return
			}
		}
	})
	if len(names) == 0 {
		return nil, nil, errors.New("no file to merge")
	}
	ref := files[names[0]][0]
	bySlot := map[int]string{}
	var first, last time.Time
	var firstName, lastName string
	for _, n := range names {
		for i, l := range files[n] {
			f0 := files[n][0]
			switch {
			case l.Run != f0.Run || l.Slot != f0.Slot || l.Worker != f0.Worker || !l.T0.Equal(f0.T0):
				return nil, nil, fmt.Errorf("%s window %d is run %q worker %s slot %d, its first run %q worker %s slot %d: one file per worker and run",
					n, i+1, l.Run, l.Worker, l.Slot, f0.Run, f0.Worker, f0.Slot)
			case l.Run != ref.Run:
				return nil, nil, fmt.Errorf("%s is run %q but %s is run %q: files of different runs do not merge", n, l.Run, names[0], ref.Run)
			case l.Workers != ref.Workers || l.Window != ref.Window || l.Warmup != ref.Warmup || l.Rate != ref.Rate || l.Duration != ref.Duration:
				return nil, nil, fmt.Errorf("%s and %s disagree on the run's shape (workers %d/%d, window %v/%v, warm-up %v/%v, duration %v/%v, rate %g/%g)",
					n, names[0], l.Workers, ref.Workers, l.Window, ref.Window, l.Warmup, ref.Warmup, l.Duration, ref.Duration, l.Rate, ref.Rate)
			case l.Window <= 0 || l.Duration <= 0 || !(l.Rate > 0):
				return nil, nil, fmt.Errorf("%s line %d: window %v, duration %v and rate %g must be positive", n, i+1, l.Window, l.Duration, l.Rate)
			case l.Slot < 0 || l.Slot >= l.Workers:
				return nil, nil, fmt.Errorf("%s: slot %d is outside 0..%d", n, l.Slot, l.Workers-1)
			}
		}
		l := files[n][0]
		if other, ok := bySlot[l.Slot]; ok {
			return nil, nil, fmt.Errorf("%s and %s are both worker slot %d of run %q: a worker's file given twice", other, n, l.Slot, l.Run)
		}
		bySlot[l.Slot] = n
		if first.IsZero() || l.T0.Before(first) {
			first, firstName = l.T0, n
		}
		if l.T0.After(last) {
			last, lastName = l.T0, n
		}
	}
	if gap := last.Sub(first); gap > maxGap {
		return nil, nil, fmt.Errorf("starts do not line up: %s started at %s and %s at %s, %v apart (limit %v): not one run's workers, or their clocks disagree",
			firstName, first.Format(time.RFC3339Nano), lastName, last.Format(time.RFC3339Nano), gap, maxGap)
	}

	cfg := Config{RunID: ref.Run, Workers: ref.Workers, Grace: ref.Window,
		Engine: engine.Config{Rate: ref.Rate, Window: ref.Window, Warmup: ref.Warmup, Duration: ref.Duration}}
	st := newState(cfg, first, ref.Workers)
	res := &Result{RunID: ref.Run, T0: first, Asked: ref.Workers}
	for slot := range ref.Workers {
		share, err := Split(ref.Rate, slot, ref.Workers)
		if err != nil {
			return nil, nil, err
		}
		w := &workerState{share: share, parts: map[int]part{}, WorkerResult: WorkerResult{Slot: slot, Rate: share.Rate}}
		st.workers[slot] = w
		n, ok := bySlot[slot]
		if !ok {
			w.Name = fmt.Sprintf("slot %d", slot)
			st.lose(slot, first, "no file")
			continue
		}
		res.Started++
		ls := files[n]
		w.Name, w.Node, w.Addr = ls[0].Worker, ls[0].Node, n
		w.Offset = ls[0].T0.Sub(first)
		w.done, w.doneWindows = true, len(ls)
		for _, l := range ls {
			if !l.FirstSend.IsZero() && w.FirstSend.IsZero() {
				w.FirstSend = l.FirstSend.Add(-w.Offset)
			}
			w.parts[l.Index] = part{stats: l.Stats, cpu: l.CPU, cores: l.Cores}
		}
		// A file that ends before the run did is a worker lost after its
		// last window (killed, or its pod's log cut short).
		if len(ls) < st.nominal {
			from, length := st.bounds(len(ls) - 1)
			st.lose(slot, st.measureFrom.Add(from+length), fmt.Sprintf("its file ends after window %d of %d", len(ls)-1, st.nominal))
		}
	}
	if res.Started < ref.Workers {
		res.Note = fmt.Sprintf("files of %d of the run's %d workers", res.Started, ref.Workers)
	}
	windows := st.emit(first.Add(100 * 365 * 24 * time.Hour))
	res.finish(st)
	return res, windows, nil
}
