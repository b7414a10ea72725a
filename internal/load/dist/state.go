package dist

import (
	"fmt"
	"strings"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"

	"github.com/knowingnode/knowingnode/internal/load/engine"
)

// workerState is one started worker, seen from the coordinator.
type workerState struct {
	WorkerResult
	share       Share
	parts       map[int]part // windows reported and not merged yet
	done        bool
	doneWindows int
	doneSent    int64 // the worker's own total, to check the merge by
}

// state merges the workers' windows in order. It is owned by one
// goroutine; receive and emit are pure but for the clock they are given.
type state struct {
	cfg         Config
	t0          time.Time
	measureFrom time.Time
	nominal     int // windows of the measured duration
	workers     []*workerState
	next        int             // the next window to merge
	merged      []*engine.Stats // merged windows, for the summary
	missing     int64
	bound       int
	// onLose, when set, hears of each loss: the coordinator then closes
	// the lost worker's stream, so a worker that is only slow or cut off
	// stops loading instead of adding calls nobody counts.
	onLose func(i int)
}

func newState(cfg Config, t0 time.Time, n int) *state {
	w, d := cfg.Engine.Window, cfg.Engine.Duration
	return &state{cfg: cfg, t0: t0, measureFrom: t0.Add(cfg.Engine.Warmup), nominal: int((d + w - 1) / w),
		workers: make([]*workerState, n)}
}

// bounds is where window k starts and how long it is, from measureFrom.
func (s *state) bounds(k int) (from, length time.Duration) {
	w, d := s.cfg.Engine.Window, s.cfg.Engine.Duration
	from = time.Duration(k) * w
	if k >= s.nominal {
		return from, w
	}
	return from, min(w, d-from)
}

// deadline is when window k's reports are due: its end plus the grace,
// or, for the tail after the duration (calls still in flight), the
// duration's end plus the call timeout and the grace.
func (s *state) deadline(k int) time.Time {
	e := s.cfg.Engine
	if k >= s.nominal {
		return s.measureFrom.Add(e.Duration + e.Timeout + s.cfg.Grace)
	}
	from, length := s.bounds(k)
	return s.measureFrom.Add(from + length + s.cfg.Grace)
}

func (s *state) lose(i int, at time.Time, reason string) {
	w := s.workers[i]
	if w.Lost {
		return
	}
	w.Lost, w.LostAt, w.LostReason = true, at.Sub(s.t0).Round(time.Millisecond), reason
	if s.onLose != nil {
		s.onLose(i)
	}
}

func (s *state) anyLost() bool {
	for _, w := range s.workers {
		if w.Lost {
			return true
		}
	}
	return false
}

// lostLine names the lost workers, e.g. "worker-2 (10.0.0.7:9300) lost at 3.2s: ...".
func (s *state) lostLine() string {
	var l []string
	for _, w := range s.workers {
		if w.Lost {
			l = append(l, fmt.Sprintf("%s (%s) lost at %v: %s, %d calls of its share missing", w.Name, w.Addr, w.LostAt, w.LostReason, w.Missing))
		}
	}
	return strings.Join(l, "; ")
}

// receive takes one event of a worker's stream. Anything from a lost
// worker is ignored, and so is a window already merged without it: no
// call is counted twice.
func (s *state) receive(ev event) {
	w := s.workers[ev.w]
	if w.Lost || w.done {
		return
	}
	switch {
	case ev.err != nil:
		s.lose(ev.w, ev.at, fmt.Sprintf("stream ended: %v", ev.err))
	case ev.window != nil:
		k := int(ev.window.GetIndex())
		if k < 0 || k > s.nominal {
			// Windows run from 0 to the duration's last, plus one tail.
			s.lose(ev.w, ev.at, fmt.Sprintf("sent window %d, outside 0..%d", k, s.nominal))
			return
		}
		if fs := ev.window.GetFirstSend(); fs != nil && w.FirstSend.IsZero() {
			w.FirstSend = fs.AsTime().Add(-w.Offset)
		}
		if k < s.next {
			return
		}
		p, err := decodeWindow(ev.window)
		if err != nil {
			s.lose(ev.w, ev.at, err.Error())
			return
		}
		w.parts[k] = p
	case ev.done != nil:
		w.done, w.doneWindows, w.doneSent = true, min(int(ev.done.GetWindows()), s.nominal+1), ev.done.GetSent()
		if fs := ev.done.GetFirstSend(); fs != nil && w.FirstSend.IsZero() {
			w.FirstSend = fs.AsTime().Add(-w.Offset)
		}
		if e := ev.done.GetError(); e != "" && !strings.Contains(e, "context canceled") {
			s.lose(ev.w, ev.at, "stopped: "+e)
		}
	}
}

// expects reports whether worker w may still report window k.
func (s *state) expects(w *workerState, k int) bool {
	if w.Lost {
		return false
	}
	if w.done {
		return k < w.doneWindows
	}
	return true
}

// complete reports whether every worker has reported window k or will not.
func (s *state) complete(k int) bool {
	for _, w := range s.workers {
		if _, ok := w.parts[k]; !ok && s.expects(w, k) {
			return false
		}
	}
	return true
}

// over reports whether every window has been merged: past the duration,
// nothing is expected any more.
func (s *state) over() bool {
	if s.next < s.nominal {
		return false
	}
	for _, w := range s.workers {
		if _, ok := w.parts[s.next]; ok || s.expects(w, s.next) {
			return false
		}
	}
	return true
}

// emit merges the windows that are complete, or due: a worker whose
// window is past its deadline is lost then.
func (s *state) emit(now time.Time) []*Window {
	var out []*Window
	for !s.over() {
		k := s.next
		if !s.complete(k) {
			if now.Before(s.deadline(k)) {
				break
			}
			for i, w := range s.workers {
				if _, ok := w.parts[k]; !ok && s.expects(w, k) {
					s.lose(i, now, fmt.Sprintf("no window %d within %v of its end", k, s.cfg.Grace))
				}
			}
		}
		out = append(out, s.merge(k))
		s.next++
	}
	return out
}

// merge merges window k from the parts reported.
func (s *state) merge(k int) *Window {
	from, length := s.bounds(k)
	var stats []*engine.Stats
	var packed []*hdrhistogram.PackedHistogram
	win := &Window{Index: k, Expected: len(s.workers)}
	for _, w := range s.workers {
		p, ok := w.parts[k]
		if !ok {
			if w.Lost && k < s.nominal {
				// The share's calls of this window, from t0.
				warm := s.cfg.Engine.Warmup
				n := w.share.Calls(warm+from+length) - w.share.Calls(warm+from)
				w.Missing += n
				win.Missing += n
			}
			continue
		}
		delete(w.parts, k)
		stats = append(stats, p.stats)
		if p.packed != nil {
			packed = append(packed, p.packed)
		}
		if k >= s.nominal {
			length = max(length, p.stats.Length)
		}
		win.Workers++
		w.Windows++
		w.Sent += p.stats.Sent
		win.MaxWorkerCPU = max(win.MaxWorkerCPU, p.cpu)
		win.GeneratorBound = win.GeneratorBound || p.generatorBound()
	}
	win.Stats = mergeStats(stats, packed, s.measureFrom.Add(from), length, from+length)
	win.Degraded = s.anyLost()
	s.missing += win.Missing
	if win.GeneratorBound {
		s.bound++
	}
	s.merged = append(s.merged, win.Stats)
	return win
}

// summary merges every merged window: each call counted once.
func (s *state) summary() *Window {
	d := s.cfg.Engine.Duration
	sum := &Window{Index: -1, Expected: len(s.workers), Missing: s.missing, Degraded: s.anyLost(), GeneratorBound: s.bound > 0}
	for _, w := range s.workers {
		if !w.Lost {
			sum.Workers++
		}
	}
	sum.Stats = mergeStats(s.merged, nil, s.measureFrom, d, d)
	sum.RequestedRate = s.cfg.Engine.Rate
	return sum
}
