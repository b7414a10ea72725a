package report

import (
	"sync"
	"time"
)

// MaxPods bounds the addresses and pod names a Tracker follows; further
// ones are ignored, so a target answering with ever-new names cannot grow a
// report without bound.
const MaxPods = 256

// Endpoint is what discovery said of one address at one refresh. Known is
// set when the source has conditions (EndpointSlices); a DNS answer only
// says that the address is there.
type Endpoint struct {
	Addr, Pod, Node, Zone       string
	Known                       bool
	Ready, Serving, Terminating bool
}

// Lifecycle mark kinds. Ready, Serving and Terminating come from
// EndpointSlice conditions; Appeared and Gone from any discovery (for DNS,
// when an address first and last answered).
const (
	Appeared    = "appeared"
	Ready       = "ready"
	NotReady    = "not-ready"
	Serving     = "serving"
	NotServing  = "not-serving"
	Terminating = "terminating"
	Gone        = "gone"
	FirstCall   = "first-call"
	LastCall    = "last-call"
)

type mark struct {
	at   time.Time
	kind string
}

type endpointState struct {
	ep    Endpoint
	marks []mark
	here  bool
	first time.Time // first seen
}

type podCalls struct {
	addr, node, zone string
	first, last      time.Time
	calls            int64
}

type readyPoint struct {
	at    time.Time
	ready int // ready (or, for DNS, present) addresses
	known bool
}

// Tracker follows each endpoint's lifecycle, as discovery saw it, and each
// pod's first and last call. It is safe for concurrent use.
type Tracker struct {
	mu       sync.Mutex
	eps      map[string]*endpointState // by address
	order    []string                  // addresses in order of appearance
	pods     map[string]*podCalls      // by pod name
	podOrder []string
	ready    []readyPoint
	observed bool
}

// NewTracker returns an empty Tracker.
func NewTracker() *Tracker {
	return &Tracker{eps: map[string]*endpointState{}, pods: map[string]*podCalls{}}
}

// Observe records what a discovery refresh at time at found: every
// endpoint, callable or not. Addresses missing from eps are gone.
func (t *Tracker) Observe(at time.Time, eps []Endpoint) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.observed = true
	seen := make(map[string]bool, len(eps))
	ready, known := 0, false
	for _, e := range eps {
		seen[e.Addr] = true
		if !e.Known || e.Ready {
			ready++
		}
		known = known || e.Known
		s, ok := t.eps[e.Addr]
		if !ok {
			if len(t.eps) >= MaxPods {
				continue
			}
			s = &endpointState{first: at}
			t.eps[e.Addr] = s
			t.order = append(t.order, e.Addr)
		}
		prev, was := s.ep, s.here
		if !was {
			s.marks = append(s.marks, mark{at, Appeared})
		}
		if e.Known {
			switch {
			case e.Ready && (!was || !prev.Ready):
				s.marks = append(s.marks, mark{at, Ready})
			case !e.Ready && was && prev.Ready:
				s.marks = append(s.marks, mark{at, NotReady})
			}
			switch {
			case !e.Serving && (!was || prev.Serving):
				s.marks = append(s.marks, mark{at, NotServing})
			case e.Serving && was && !prev.Serving:
				s.marks = append(s.marks, mark{at, Serving})
			}
			if e.Terminating && (!was || !prev.Terminating) {
				s.marks = append(s.marks, mark{at, Terminating})
			}
		}
		pod := e.Pod
		if pod == "" {
			pod = s.ep.Pod
		}
		s.ep = e
		s.ep.Pod = pod
		s.here = true
	}
	for _, a := range t.order {
		if s := t.eps[a]; s.here && !seen[a] {
			s.here = false
			s.marks = append(s.marks, mark{at, Gone})
		}
	}
	t.ready = append(t.ready, readyPoint{at: at, ready: ready, known: known})
}

// Call records a successful call sent at time at and answered by pod (at
// addr, when the transport knows it).
func (t *Tracker) Call(at time.Time, addr, pod, node, zone string) {
	if pod == "" {
		pod = addr
	}
	if pod == "" {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	p, ok := t.pods[pod]
	if !ok {
		if len(t.pods) >= MaxPods {
			return
		}
		p = &podCalls{first: at, last: at}
		t.pods[pod] = p
		t.podOrder = append(t.podOrder, pod)
	}
	p.calls++
	if at.Before(p.first) {
		p.first = at
	}
	if at.After(p.last) {
		p.last = at
	}
	if addr != "" {
		p.addr = addr
		if s, ok := t.eps[addr]; ok && s.ep.Pod == "" {
			s.ep.Pod = pod
		}
	}
	if node != "" {
		p.node = node
	}
	if zone != "" {
		p.zone = zone
	}
}
