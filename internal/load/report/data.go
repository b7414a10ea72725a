package report

import (
	"cmp"
	"maps"
	"slices"
	"strconv"
	"time"

	"github.com/knowingnode/knowingnode/internal/load/engine"
)

// LatencyCovers says which calls the latency quantiles cover.
const LatencyCovers = "every call that completed in the window, ok or failed, timed from when it was due to be sent " +
	"(open loop: waiting for a free worker counts); calls never sent (dropped) are not samples"

// Decision is one autoscaler decision: an HPA's status changed its desired
// replicas (or its scale time).
type Decision struct {
	At               time.Time
	HPA              string
	Current, Desired int32
	Metric           string // what it acted on, e.g. "cpu 87% (target 50%)"
}

// Run is everything a report shows.
type Run struct {
	Title     string
	Args      []string // the command line
	Target    string
	Call      string
	Refresh   time.Duration // discovery's period; 0 when the load does not re-resolve
	Discovery string        // "kubernetes", "dns" or "" (no lifecycle)
	Windows   []*engine.Stats
	Summary   *engine.Stats
	Tracker   *Tracker // may be nil
	Decisions []Decision
}

// Data is the report's JSON, embedded in the page. Times are seconds after
// the measured run began (Start); negative ones are before it.
type Data struct {
	Title         string     `json:"title"`
	Args          []string   `json:"args"`
	Target        string     `json:"target"`
	Call          string     `json:"call"`
	Start         time.Time  `json:"start"`
	StartUnixMs   int64      `json:"startUnixMs"`
	Window        float64    `json:"window"`
	Refresh       float64    `json:"refresh"`
	Discovery     string     `json:"discovery"`
	LatencyCovers string     `json:"latencyCovers"`
	Series        Series     `json:"series"`
	Pods          []Pod      `json:"pods"`
	Decisions     []Mark     `json:"decisions"`
	Summary       Summary    `json:"summary"`
	NeverCalled   []string   `json:"neverCalled"`
	Replicas      []Replicas `json:"replicas"`
}

// Series are per-window columns; T is where each window ends.
type Series struct {
	T         []float64          `json:"t"`
	Asked     []*float64         `json:"asked"` // calls/s; null in closed loop
	Sent      []float64          `json:"sent"`
	OK        []float64          `json:"ok"`
	Failed    []float64          `json:"failed"`
	P50       []*float64         `json:"p50"` // ms; null when no call completed
	P90       []*float64         `json:"p90"`
	P99       []*float64         `json:"p99"`
	Max       []*float64         `json:"max"`
	Ready     []*int             `json:"ready"` // ready endpoints at the window's end; null without discovery
	Answering []int              `json:"answering"`
	ByPod     map[string][]int64 `json:"byPod"` // ok calls each pod answered per window
}

// Mark is a moment on the time line.
type Mark struct {
	T     float64 `json:"t"`
	Kind  string  `json:"kind"`
	Label string  `json:"label,omitempty"`
}

// Pod is one pod (or, when its name is unknown, one address).
type Pod struct {
	Name             string   `json:"name"`
	Addr             string   `json:"addr,omitempty"`
	Node             string   `json:"node,omitempty"`
	Zone             string   `json:"zone,omitempty"`
	New              bool     `json:"new"` // appeared after the run began
	Calls            int64    `json:"calls"`
	Marks            []Mark   `json:"marks"`
	Ready            *float64 `json:"ready,omitempty"` // first Ready (DNS: first appeared)
	FirstCall        *float64 `json:"firstCall,omitempty"`
	LastCall         *float64 `json:"lastCall,omitempty"`
	Terminating      *float64 `json:"terminating,omitempty"`
	ReadyToFirstCall *float64 `json:"readyToFirstCall,omitempty"`
}

// Row is a line of a summary table.
type Row struct {
	Key   string  `json:"key"`
	Calls int64   `json:"calls"`
	Share float64 `json:"share"`
}

// Summary is the whole run.
type Summary struct {
	Sent, OK, Failed, Late, Dropped int64
	Rate, Asked                     float64
	Length                          float64
	P50, P90, P99, Max              float64 // ms
	ByPod, ByNode, ByZone, ByCode   []Row
	BackendByPod                    []Row `json:",omitempty"`
}

// Replicas is an HPA's current and desired replicas over time (steps).
type Replicas struct {
	HPA     string    `json:"hpa"`
	T       []float64 `json:"t"`
	Current []int32   `json:"current"`
	Desired []int32   `json:"desired"`
}

func ms(d time.Duration) float64 { return float64(d) / 1e6 }

// Build turns a run into the report's data.
func Build(r Run) Data {
	d := Data{Title: r.Title, Args: r.Args, Target: r.Target, Call: r.Call, Refresh: r.Refresh.Seconds(),
		Discovery: r.Discovery, LatencyCovers: LatencyCovers, Series: Series{ByPod: map[string][]int64{}}}
	if len(r.Windows) > 0 {
		w0 := r.Windows[0]
		d.Start = w0.Start.Add(w0.Length - w0.Elapsed)
		d.Window = w0.Length.Seconds()
	} else if r.Summary != nil {
		d.Start = r.Summary.Start
	}
	d.StartUnixMs = d.Start.UnixMilli()
	rel := func(t time.Time) float64 { return t.Sub(d.Start).Seconds() }
	ptr := func(t time.Time) *float64 {
		if t.IsZero() {
			return nil
		}
		v := rel(t)
		return &v
	}

	var asked *float64
	if r.Summary != nil && r.Summary.RequestedRate > 0 {
		asked = &r.Summary.RequestedRate
	}
	var ready []readyPoint
	if r.Tracker != nil {
		r.Tracker.mu.Lock()
		ready = slices.Clone(r.Tracker.ready)
		r.Tracker.mu.Unlock()
	}
	s := &d.Series
	for i, w := range r.Windows {
		s.T = append(s.T, w.Elapsed.Seconds())
		sec := w.Length.Seconds()
		perSec := func(n int64) float64 {
			if sec <= 0 {
				return 0
			}
			return float64(n) / sec
		}
		s.Asked = append(s.Asked, asked)
		s.Sent = append(s.Sent, perSec(w.Sent))
		s.OK = append(s.OK, perSec(w.OK))
		s.Failed = append(s.Failed, perSec(w.Failed))
		q := func(v time.Duration) *float64 {
			if w.Completed() == 0 {
				return nil
			}
			f := ms(v)
			return &f
		}
		s.P50, s.P90, s.P99, s.Max = append(s.P50, q(w.Latency.P50)), append(s.P90, q(w.Latency.P90)), append(s.P99, q(w.Latency.P99)), append(s.Max, q(w.Latency.Max))
		s.Answering = append(s.Answering, len(w.ByPod))
		var rd *int
		end := w.Start.Add(w.Length)
		for _, p := range ready {
			if p.at.After(end) {
				break
			}
			n := p.ready
			rd = &n
		}
		s.Ready = append(s.Ready, rd)
		for pod, n := range w.ByPod {
			col := s.ByPod[pod]
			if col == nil {
				col = make([]int64, len(r.Windows))
				s.ByPod[pod] = col
			}
			col[i] = n
		}
	}

	if r.Summary != nil {
		sum := r.Summary
		d.Summary = Summary{Sent: sum.Sent, OK: sum.OK, Failed: sum.Failed, Late: sum.Late, Dropped: sum.Dropped,
			Rate: sum.Rate, Asked: sum.RequestedRate, Length: sum.Length.Seconds(),
			P50: ms(sum.Latency.P50), P90: ms(sum.Latency.P90), P99: ms(sum.Latency.P99), Max: ms(sum.Latency.Max),
			ByPod: rows(sum.ByPod), ByNode: rows(sum.ByNode), ByZone: rows(sum.ByZone), ByCode: rows(sum.ByCode),
			BackendByPod: rows(sum.BackendByPod)}
	}
	d.Pods = pods(r, rel, ptr)
	for _, p := range d.Pods {
		if p.Ready != nil && p.FirstCall == nil {
			d.NeverCalled = append(d.NeverCalled, p.Name)
		}
	}
	byHPA := map[string]*Replicas{}
	for _, dec := range r.Decisions {
		d.Decisions = append(d.Decisions, Mark{T: rel(dec.At), Kind: "hpa",
			Label: decisionLabel(dec)})
		rp := byHPA[dec.HPA]
		if rp == nil {
			rp = &Replicas{HPA: dec.HPA}
			byHPA[dec.HPA] = rp
		}
		rp.T = append(rp.T, rel(dec.At))
		rp.Current = append(rp.Current, dec.Current)
		rp.Desired = append(rp.Desired, dec.Desired)
	}
	for _, k := range slices.Sorted(maps.Keys(byHPA)) {
		d.Replicas = append(d.Replicas, *byHPA[k])
	}
	return d
}

func decisionLabel(dec Decision) string {
	l := dec.HPA + ": " + itoa(dec.Current) + " → " + itoa(dec.Desired)
	if dec.Metric != "" {
		l += " (" + dec.Metric + ")"
	}
	return l
}

func itoa(n int32) string { return strconv.Itoa(int(n)) }

// rows orders a count map by count, then name, with each one's share.
func rows(m map[string]int64) []Row {
	var total int64
	for _, n := range m {
		total += n
	}
	out := make([]Row, 0, len(m))
	for k, n := range m {
		r := Row{Key: k, Calls: n}
		if total > 0 {
			r.Share = float64(n) / float64(total)
		}
		out = append(out, r)
	}
	slices.SortFunc(out, func(a, b Row) int { return cmp.Or(cmp.Compare(b.Calls, a.Calls), cmp.Compare(a.Key, b.Key)) })
	return out
}

// pods joins each address's lifecycle with its pod's calls.
func pods(r Run, rel func(time.Time) float64, ptr func(time.Time) *float64) []Pod {
	t := r.Tracker
	if t == nil {
		t = NewTracker()
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	var start time.Time
	if len(r.Windows) > 0 {
		w0 := r.Windows[0]
		start = w0.Start.Add(w0.Length - w0.Elapsed)
	}
	var out []Pod
	named := map[string]bool{}
	for _, addr := range t.order {
		s := t.eps[addr]
		p := Pod{Name: s.ep.Pod, Addr: addr, Node: s.ep.Node, Zone: s.ep.Zone, New: !start.IsZero() && s.first.After(start)}
		if p.Name == "" {
			p.Name = addr
		}
		var readyAt, termAt time.Time
		for _, m := range s.marks {
			p.Marks = append(p.Marks, Mark{T: rel(m.at), Kind: m.kind})
			switch {
			case m.kind == Ready && readyAt.IsZero():
				readyAt = m.at
			case m.kind == Appeared && !s.ep.Known && readyAt.IsZero():
				readyAt = m.at
			case m.kind == Terminating && termAt.IsZero():
				termAt = m.at
			}
		}
		p.Ready, p.Terminating = ptr(readyAt), ptr(termAt)
		if c, ok := t.pods[s.ep.Pod]; ok && s.ep.Pod != "" {
			named[s.ep.Pod] = true
			addCalls(&p, c, rel)
		} else if c, ok := t.pods[addr]; ok {
			named[addr] = true
			addCalls(&p, c, rel)
		}
		if p.Ready != nil && p.FirstCall != nil && p.New {
			v := *p.FirstCall - *p.Ready
			p.ReadyToFirstCall = &v
		}
		out = append(out, p)
	}
	// Pods that answered but that discovery never listed (no discovery, or
	// a tier behind a ClusterIP or a frontend).
	for _, name := range t.podOrder {
		if named[name] {
			continue
		}
		c := t.pods[name]
		p := Pod{Name: name, Addr: c.addr}
		addCalls(&p, c, rel)
		out = append(out, p)
	}
	return out
}

func addCalls(p *Pod, c *podCalls, rel func(time.Time) float64) {
	p.Calls = c.calls
	if p.Node == "" {
		p.Node = c.node
	}
	if p.Zone == "" {
		p.Zone = c.zone
	}
	f, l := rel(c.first), rel(c.last)
	p.FirstCall, p.LastCall = &f, &l
	p.Marks = append(p.Marks, Mark{T: f, Kind: FirstCall}, Mark{T: l, Kind: LastCall})
	slices.SortStableFunc(p.Marks, func(a, b Mark) int { return cmp.Compare(a.T, b.T) })
}
