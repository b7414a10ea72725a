package load

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	knowingnodev1 "github.com/knowingnode/knowingnode/gen/knowingnode/v1"
	"github.com/knowingnode/knowingnode/internal/discovery"
	"github.com/knowingnode/knowingnode/internal/load/engine"
	"github.com/knowingnode/knowingnode/internal/load/report"
)

// The reports of ended loads (internal/load/report: one self-contained HTML
// file, as bin/load --report writes), kept by run id for the page's
// "Download report" (GET /v1/load/runs/{id}/report, served by the gateway).
//
// Memory: while a load runs, one small record per window (the counts,
// latency and calls by pod and code of a second: about 0.5 KB + 50 B a
// pod; the engine counts at most engine.MaxKeys pods a window) and the
// pods' lifecycle (report.Tracker, at most report.MaxPods pods). When it
// ends only its rendered HTML is kept: about 60 KB of chart code plus the
// data (30 s over 3 pods: 71 KB; 1 h over 10 pods: 0.3 MB; 1 h over 256
// pods: 2.2 MB). At most --load-reports of them and at most MaxReportBytes
// in all; the oldest go first.

// MaxReportBytes bounds the HTML of the reports kept, together. A report
// larger than it alone is not kept; the largest a load can make, 1 h
// (--load-max-duration's bound) over 256 pods, is about 2.2 MB.
const MaxReportBytes = 32 << 20

// MaxReports bounds --load-reports.
const MaxReports = 100

// reportWait is how long a request for the report of a run that has not
// ended yet waits for it: a run stopped by its caller ends within a moment
// of the stop (its calls are cancelled), so the page's download right
// after a stop gets the report, not an error. A variable for the tests.
var reportWait = 5 * time.Second

// runIDPattern is what newRunID makes: 128 random bits, in hex.
var runIDPattern = regexp.MustCompile(`^[0-9a-f]{32}$`)

func newRunID() string {
	b := make([]byte, 16)
	rand.Read(b) // never fails (crypto/rand, Go 1.24)
	return hex.EncodeToString(b)
}

// reports holds the runs under way and the last ones ended.
type reports struct {
	keep int // reports kept once their runs end; 0: none

	mu    sync.Mutex
	runs  map[string]*run // by id: running and kept
	ended []*run          // kept, oldest first
	bytes int             // HTML kept
}

func newReports(keep int) *reports {
	return &reports{keep: keep, runs: map[string]*run{}}
}

// run is one load's record: its windows and pods while it runs, its HTML
// once it ended.
type run struct {
	id   string
	desc report.Run // Title, Args, Target, Call, Discovery, Refresh
	done chan struct{}

	tracker *report.Tracker

	mu      sync.Mutex
	windows []*engine.Stats // trimmed (see trim)

	// Set before done is closed.
	name string // the file name offered
	html []byte // nil when the run left no report, and why
	why  string
}

// start records a new run; nil when no reports are kept.
func (rs *reports) start(desc report.Run) *run {
	if rs == nil || rs.keep <= 0 {
		return nil
	}
	r := &run{id: newRunID(), desc: desc, done: make(chan struct{}), tracker: report.NewTracker()}
	rs.mu.Lock()
	defer rs.mu.Unlock()
	rs.runs[r.id] = r
	return r
}

// ID is the run's id; "" for none.
func (r *run) ID() string {
	if r == nil {
		return ""
	}
	return r.id
}

// window records a closed window.
func (r *run) window(w *engine.Stats) {
	if r == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.windows = append(r.windows, trim(w))
}

// trim keeps of a window what a report draws, so that a running load
// holds no per-node, per-zone or histogram data for each second.
func trim(w *engine.Stats) *engine.Stats {
	return &engine.Stats{Start: w.Start, Elapsed: w.Elapsed, Length: w.Length,
		Sent: w.Sent, Late: w.Late, Dropped: w.Dropped, OK: w.OK, Failed: w.Failed, Draining: w.Draining,
		Rate: w.Rate, Latency: w.Latency, ByPod: w.ByPod, ByCode: w.ByCode}
}

// end renders the run's report from its windows and summary (nil: the
// load never started, and leaves no report), keeps it, and drops the
// oldest reports past the bounds.
func (rs *reports) end(r *run, sum *engine.Stats) {
	if r == nil {
		return
	}
	defer close(r.done)
	var html []byte
	r.why = "it ended before it started"
	if sum != nil {
		r.mu.Lock()
		rr := r.desc
		rr.Windows, r.windows = r.windows, nil
		r.mu.Unlock()
		rr.Summary, rr.Tracker = sum, r.tracker
		var b bytes.Buffer
		switch err := report.Write(&b, report.Build(rr)); {
		case err != nil:
			r.why = err.Error()
		case b.Len() > MaxReportBytes:
			r.why = fmt.Sprintf("its report of %d bytes is over the %d this frontend keeps", b.Len(), MaxReportBytes)
		default:
			html = b.Bytes()
		}
		r.name = fileName(rr.Target, rr.Windows, sum)
	}
	r.tracker = nil // the caller has joined every user of it
	rs.mu.Lock()
	defer rs.mu.Unlock()
	// A run without a report is kept too, as one of the last runs, to say why.
	r.html = html
	rs.ended = append(rs.ended, r)
	rs.bytes += len(html)
	for len(rs.ended) > rs.keep || rs.bytes > MaxReportBytes {
		old := rs.ended[0]
		rs.ended = rs.ended[1:]
		rs.bytes -= len(old.html)
		delete(rs.runs, old.id)
	}
}

// kept is the number of reports kept and their bytes, for the metrics.
func (rs *reports) kept() (n, bytes int) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	return len(rs.ended), rs.bytes
}

// fileName is knowingnode-load-<target>-<start, UTC>.html.
func fileName(target string, windows []*engine.Stats, sum *engine.Stats) string {
	start := sum.Start
	if len(windows) > 0 {
		w0 := windows[0]
		start = w0.Start.Add(w0.Length - w0.Elapsed)
	}
	name, _, _ := strings.Cut(target, "=")
	return "knowingnode-load-" + safeName(name) + "-" + start.UTC().Format("20060102T150405Z") + ".html"
}

// safeName keeps letters, digits, '.', '_' and '-' (a target's name is
// already of them), so the name needs no quoting in Content-Disposition.
func safeName(s string) string {
	s = strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '.', r == '_', r == '-':
			return r
		}
		return '-'
	}, s)
	if len(s) > 63 {
		s = s[:63]
	}
	if s == "" {
		s = "target"
	}
	return s
}

// Report returns the HTML report of the load run id, and the file name to
// save it as. Errors are gRPC statuses: NOT_FOUND for an id this frontend
// does not keep (unknown, or older than its last --load-reports runs),
// UNAVAILABLE for a run that has not ended within a few seconds (a running
// load's report is ready when it ends).
func (s *Service) Report(ctx context.Context, id string) (name string, html []byte, err error) {
	rs := s.reports
	if !runIDPattern.MatchString(id) {
		return "", nil, status.Errorf(codes.NotFound, "no load run %.40q: a run id is the 32 hex digits of a LoadService/Run's runId", id)
	}
	rs.mu.Lock()
	r := rs.runs[id]
	rs.mu.Unlock()
	if r == nil {
		return "", nil, status.Errorf(codes.NotFound,
			"no report of load run %s on this frontend: it keeps the reports of its own last %d runs (--load-reports), in memory; "+
				"the run is older, another frontend replica ran it, or this one restarted since", id, rs.keep)
	}
	t := time.NewTimer(reportWait)
	defer t.Stop()
	select {
	case <-r.done:
	case <-t.C:
		return "", nil, status.Errorf(codes.Unavailable, "load run %s is still running: its report is ready when it ends", id)
	case <-ctx.Done():
		return "", nil, status.FromContextError(ctx.Err()).Err()
	}
	if r.html == nil {
		return "", nil, status.Errorf(codes.NotFound, "load run %s left no report: %s", id, r.why)
	}
	return r.name, r.html, nil
}

// follow feeds r's tracker with every change discovery sees of t, from
// now until ctx ends (the run's end).
func (r *run) follow(ctx context.Context, t *discovery.Target) {
	var version uint64
	first := true
	for {
		st, changed := t.Watch()
		if first || st.Version != version {
			first, version = false, st.Version
			at := st.LastRefresh
			if at.IsZero() {
				at = time.Now()
			}
			r.tracker.Observe(at, endpoints(st.Endpoints))
		}
		select {
		case <-ctx.Done():
			return
		case <-changed:
		}
	}
}

// endpoints are discovery's endpoints as the report's tracker takes them.
func endpoints(eps []discovery.Endpoint) []report.Endpoint {
	out := make([]report.Endpoint, len(eps))
	for i, e := range eps {
		sl := e.Slice
		out[i] = report.Endpoint{Addr: e.Addr, Node: sl.NodeName, Zone: sl.Zone, Known: sl.Known,
			Ready: sl.Ready, Serving: sl.Serving, Terminating: sl.Terminating}
		if kind, name, ok := strings.Cut(sl.TargetRef, "/"); ok && kind == "Pod" {
			out[i].Pod = name
		}
	}
	return out
}

// peerSlot carries the address a call reached back to the caller that
// records it (the tracker joins a pod's calls to its endpoint by it).
type peerSlot struct{ addr string }

type peerKey struct{}

// peerClient records, in the call's peerSlot, the address each call reached.
type peerClient struct {
	knowingnodev1.IdentityServiceClient
}

func (c peerClient) GetIdentity(ctx context.Context, in *knowingnodev1.GetIdentityRequest, opts ...grpc.CallOption) (*knowingnodev1.GetIdentityResponse, error) {
	slot, _ := ctx.Value(peerKey{}).(*peerSlot)
	if slot == nil {
		return c.IdentityServiceClient.GetIdentity(ctx, in, opts...)
	}
	var p peer.Peer
	resp, err := c.IdentityServiceClient.GetIdentity(ctx, in, append(opts, grpc.Peer(&p))...)
	if p.Addr != nil {
		slot.addr = p.Addr.String()
	}
	return resp, err
}

// record wraps call so that each successful call is the tracker's: its pod's
// first and last call, joined to the endpoint it reached.
func (r *run) record(call engine.Caller) engine.Caller {
	if r == nil {
		return call
	}
	return func(ctx context.Context) (engine.Result, error) {
		slot := &peerSlot{}
		at := time.Now()
		res, err := call(context.WithValue(ctx, peerKey{}, slot))
		if err == nil {
			r.tracker.Call(at, slot.addr, res.Pod, res.Node, res.Zone)
		}
		return res, err
	}
}

// describe is what a report says of a run: the request, the target and its
// discovery.
func describe(name string, t *discovery.Target, refresh time.Duration, mode knowingnodev1.FanOutMode, rate float64, d time.Duration) report.Run {
	m := strings.TrimPrefix(mode.String(), "FAN_OUT_MODE_")
	r := report.Run{
		Title:  "load of " + name,
		Args:   []string{"LoadService/Run", "target=" + name, "mode=" + m, fmt.Sprintf("rate=%g", rate), "duration=" + d.String()},
		Target: name,
		Call:   "GetIdentity, " + m,
	}
	if t != nil {
		sp := t.Spec()
		r.Target = name + "=" + sp.Raw
		switch sp.QType {
		case discovery.Kubernetes:
			r.Discovery = "kubernetes" // a watch: changes come as they happen
		case discovery.A, discovery.SRV, discovery.StatefulSet:
			r.Discovery, r.Refresh = "dns", refresh
		}
	}
	return r
}
