package engine

import (
	"sync"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
	"google.golang.org/grpc/codes"

	"github.com/knowingnode/knowingnode/internal/grpccode"
)

// MaxKeys bounds the distinct pods, nodes or zones a map of Stats holds;
// further names are counted under Other, so a target that answers with
// ever-new names cannot grow a report without bound.
const MaxKeys = 256

// Other is the key that counts names past MaxKeys.
const Other = "(other)"

// Histogram range: 1 µs to 1 h at 3 significant digits.
const (
	histMin     = 1
	histMax     = int64(time.Hour / time.Microsecond)
	histSigFigs = 3
)

// Latency is a set of quantiles of the calls' latencies.
type Latency struct {
	P50 time.Duration `json:"p50"`
	P90 time.Duration `json:"p90"`
	P99 time.Duration `json:"p99"`
	Max time.Duration `json:"max"`
}

// Stats describes the calls of one window, or of the whole run.
type Stats struct {
	// Start of the window (or run) and how far into the measured run it
	// ends, and its length.
	Start   time.Time     `json:"start"`
	Elapsed time.Duration `json:"elapsed"`
	Length  time.Duration `json:"length"`
	// Calls sent; of them, those sent late because every worker was busy.
	Sent int64 `json:"sent"`
	Late int64 `json:"late"`
	// Calls never sent: their time came while every worker was busy and
	// the backlog was full. They are not latency samples.
	Dropped int64 `json:"dropped"`
	// Calls that completed in the window, by outcome. Draining calls met a
	// backend that announced its shutdown (health NOT_SERVING), so the
	// channel did not call it: they are neither ok nor failed, count in
	// ByCode as DRAINING, and are not latency samples.
	OK       int64            `json:"ok"`
	Failed   int64            `json:"failed"`
	Draining int64            `json:"draining,omitempty"`
	ByCode   map[string]int64 `json:"byCode"`
	// Rate is the achieved rate: calls sent per second of the window.
	Rate float64 `json:"rate"`
	// RequestedRate is the open loop's rate, 0 in closed loop (summary only).
	RequestedRate float64 `json:"requestedRate,omitempty"`
	// Latency covers the calls that completed with OK or a failure, each
	// from its intended send time; dropped and draining calls are not in it.
	Latency Latency `json:"latency"`
	// Successful calls by the pod, node and zone that answered.
	ByPod  map[string]int64 `json:"byPod"`
	ByNode map[string]int64 `json:"byNode"`
	ByZone map[string]int64 `json:"byZone,omitempty"`
	// The node of each pod in ByPod, where known.
	PodNode map[string]string `json:"podNode,omitempty"`
	// For a tier that fans out: the backend calls inside the calls, by the
	// backend pod, node and zone that answered, and by code.
	BackendByPod  map[string]int64 `json:"backendByPod,omitempty"`
	BackendByNode map[string]int64 `json:"backendByNode,omitempty"`
	BackendByZone map[string]int64 `json:"backendByZone,omitempty"`
	BackendByCode map[string]int64 `json:"backendByCode,omitempty"`
	// Hist holds the latencies the quantiles come from, in microseconds,
	// so that windows of several processes merge exactly (never by
	// averaging quantiles). Read-only once the Stats is handed out. Set on
	// the summary, and on windows only with Config.KeepHistograms.
	Hist *hdrhistogram.Histogram `json:"-"`
	// The load each pod of ByPod reported with its calls (ORCA), for pods
	// that report it.
	LoadByPod map[string]*PodLoad `json:"loadByPod,omitempty"`
}

// Completed is the number of calls that ended in the window.
func (s *Stats) Completed() int64 { return s.OK + s.Failed + s.Draining }

// acc accumulates one Stats.
type acc struct {
	s    Stats
	hist *hdrhistogram.Histogram
	load map[string]*PodLoad // sums, made means by finish
}

func newAcc(start time.Time) *acc {
	a := &acc{hist: hdrhistogram.New(histMin, histMax, histSigFigs)}
	a.reset(start)
	return a
}

// reset starts a over at start. The histogram is kept and zeroed: at 3
// significant digits over 1 µs..1 h it is about 194 kB, too much to
// allocate once a window over a day-long run. The maps are new, since the
// Stats handed out holds the old ones.
func (a *acc) reset(start time.Time) {
	a.s = Stats{Start: start, ByCode: map[string]int64{}, ByPod: map[string]int64{}, ByNode: map[string]int64{},
		PodNode: map[string]string{}, ByZone: map[string]int64{}, BackendByPod: map[string]int64{}, BackendByNode: map[string]int64{},
		BackendByZone: map[string]int64{}, BackendByCode: map[string]int64{}}
	a.load = map[string]*PodLoad{}
	a.hist.Reset()
}

func count(m map[string]int64, k string, n int64) {
	if k == "" {
		return
	}
	if _, ok := m[k]; !ok && len(m) >= MaxKeys {
		k = Other
	}
	m[k] += n
}

func (a *acc) done(lat time.Duration, r Result, code codes.Code) {
	us := max(int64(lat/time.Microsecond), histMin)
	_ = a.hist.RecordValue(min(us, histMax))
	count(a.s.ByCode, grpccode.Name(code), 1)
	if code != codes.OK {
		a.s.Failed++
		return
	}
	a.s.OK++
	count(a.s.ByPod, r.Pod, 1)
	if _, ok := a.s.ByPod[r.Pod]; ok && r.Node != "" {
		a.s.PodNode[r.Pod] = r.Node
	}
	count(a.s.ByNode, r.Node, 1)
	count(a.s.ByZone, r.Zone, 1)
	addLoad(a.load, r.Pod, r.Load)
	a.backends(r.Backends)
}

// draining counts a call that met a draining backend and was not made.
func (a *acc) draining(r Result) {
	a.s.Draining++
	count(a.s.ByCode, CodeDraining, 1)
	a.backends(r.Backends)
}

func (a *acc) backends(hits []Hit) {
	for _, h := range hits {
		n := int64(max(h.Calls, 1))
		if h.Draining {
			count(a.s.BackendByCode, CodeDraining, n)
			continue
		}
		count(a.s.BackendByCode, grpccode.Name(h.Code), n)
		if h.Code == codes.OK {
			count(a.s.BackendByPod, h.Pod, n)
			count(a.s.BackendByNode, h.Node, n)
			count(a.s.BackendByZone, h.Zone, n)
		}
	}
}

func (a *acc) finish(end, measureFrom time.Time) *Stats {
	s := a.s
	s.LoadByPod = finishLoad(a.load)
	s.Length = end.Sub(s.Start)
	s.Elapsed = end.Sub(measureFrom)
	s.Hist = a.hist
	if s.Length > 0 {
		s.Rate = float64(s.Sent) / s.Length.Seconds()
	}
	if a.hist.TotalCount() > 0 {
		q := func(p float64) time.Duration { return time.Duration(a.hist.ValueAtQuantile(p)) * time.Microsecond }
		s.Latency = Latency{P50: q(50), P90: q(90), P99: q(99), Max: time.Duration(a.hist.Max()) * time.Microsecond}
	}
	return &s
}

// recorder holds the current window and the whole run. Its memory does not
// grow with the run's length: three histograms (run, window, and the
// window being closed) are allocated once and reused.
type recorder struct {
	measureFrom time.Time
	mu          sync.Mutex
	window, run *acc
	spare       *acc // the window before last, zeroed and ready to swap in
	keepHist    bool // hand each window a copy of its histogram
}

func newRecorder(measureFrom time.Time, keepHist bool) *recorder {
	return &recorder{measureFrom: measureFrom, window: newAcc(measureFrom), run: newAcc(measureFrom), spare: newAcc(measureFrom), keepHist: keepHist}
}

func (r *recorder) sent(late bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, a := range []*acc{r.window, r.run} {
		a.s.Sent++
		if late {
			a.s.Late++
		}
	}
}

func (r *recorder) dropped(n int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.window.s.Dropped += n
	r.run.s.Dropped += n
}

func (r *recorder) done(lat time.Duration, res Result, code codes.Code) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.window.done(lat, res, code)
	r.run.done(lat, res, code)
}

func (r *recorder) draining(res Result) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.window.draining(res)
	r.run.draining(res)
}

// closeWindow ends the current window at now and starts the next. Called
// from one goroutine at a time: the spare is swapped in under the lock, and
// the closed window's quantiles are read outside it, so calls completing
// meanwhile are not held up.
func (r *recorder) closeWindow(now time.Time) *Stats {
	r.mu.Lock()
	w := r.window
	r.spare.reset(now)
	r.window, r.spare = r.spare, w
	r.mu.Unlock()
	s := w.finish(now, r.measureFrom)
	// w's histogram is zeroed and reused two windows on: a window hands
	// out a copy of it only when asked (a distributed worker sends it).
	if r.keepHist {
		s.Hist = hdrhistogram.Import(s.Hist.Export())
	} else {
		s.Hist = nil
	}
	return s
}

func (r *recorder) summary(now time.Time, requested float64) *Stats {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.run.finish(now, r.measureFrom)
	s.RequestedRate = requested
	return s
}
