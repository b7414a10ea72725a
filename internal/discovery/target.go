package discovery

import (
	"context"
	"errors"
	"log/slog"
	"regexp"
	"slices"
	"sync"
	"time"
)

// State is what a target's discovery last saw.
type State struct {
	Spec          Spec
	Endpoints     []Endpoint // the current set; shared, read-only
	LastRefresh   time.Time
	LastSuccess   time.Time
	LastError     error // of the last refresh; nil when it succeeded
	Refreshes     int64
	RefreshErrors int64
	// Version counts the changes: refreshes that changed the endpoints
	// (their set or conditions) or the error, and the first answer, even an
	// empty one. Unchanged refreshes keep it, and so do failures that
	// differ only in a local port (stableErrText). 0: nothing resolved yet.
	Version uint64
}

// Source finds a spec's endpoints: a *Resolver asks DNS each time; a
// *KubernetesWatcher answers from the EndpointSlices it watches.
type Source interface {
	Resolve(ctx context.Context, spec Spec) ([]Endpoint, error)
}

// changeNotifier is a Source that says when its answer may have changed,
// so the Target refreshes at once instead of at the next tick.
type changeNotifier interface {
	Changes() <-chan struct{}
}

// Target keeps a spec's endpoints fresh: it re-resolves every interval, and
// sooner when asked (after failed calls). A failed lookup keeps the last good
// endpoints; an authoritative "no such name" (ErrNoRecords from the Source)
// is a successful refresh that empties them.
type Target struct {
	spec     Spec
	res      Source
	interval time.Duration
	minGap   time.Duration // between early refreshes, so failures cannot hammer DNS
	timeout  time.Duration // of one refresh
	log      *slog.Logger
	onUpdate func([]Endpoint)
	kick     chan struct{}

	refreshMu sync.Mutex // held through a whole Refresh
	mu        sync.Mutex // guards state and changed
	state     State
	// changed is closed, and replaced, when the state changes (Version
	// grows): a broadcast that needs no registration, so a watcher that
	// goes away leaves nothing behind.
	changed chan struct{}
}

// TargetOptions configure NewTarget.
type TargetOptions struct {
	Interval time.Duration // periodic re-resolution; required
	Timeout  time.Duration // of one refresh; default min(Interval, 5s)
	Logger   *slog.Logger
	// OnUpdate is called, from the refreshing goroutine, with the callable
	// endpoints (see Endpoint.Callable) after every refresh that changed
	// the set.
	OnUpdate func([]Endpoint)
}

// NewTarget returns a Target for spec, resolving through res.
func NewTarget(spec Spec, res Source, o TargetOptions) *Target {
	if o.Timeout <= 0 {
		o.Timeout = min(o.Interval, 5*time.Second)
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return &Target{
		spec:     spec,
		res:      res,
		interval: o.Interval,
		minGap:   min(o.Interval/4, time.Second),
		timeout:  o.Timeout,
		log:      o.Logger.With("target", spec.Name),
		onUpdate: o.OnUpdate,
		kick:     make(chan struct{}, 1),
		state:    State{Spec: spec},
		changed:  make(chan struct{}),
	}
}

// Spec returns the target's spec.
func (t *Target) Spec() Spec { return t.spec }

// State returns a copy of what discovery last saw.
func (t *Target) State() State {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.state
}

// Watch returns what discovery last saw and a channel closed at its next
// change (see State.Version). Watchers call it again after each change; a
// change between two calls is never missed, as the Version tells.
func (t *Target) Watch() (State, <-chan struct{}) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.state, t.changed
}

// RefreshSoon asks for an early refresh without waiting for it.
func (t *Target) RefreshSoon() {
	select {
	case t.kick <- struct{}{}:
	default: // one is already pending
	}
}

// Run refreshes until ctx ends. Call Refresh once before, to start with a set.
func (t *Target) Run(ctx context.Context) {
	tick := time.NewTicker(t.interval)
	defer tick.Stop()
	last := time.Now()
	var changes <-chan struct{} // nil, never ready, for DNS
	if n, ok := t.res.(changeNotifier); ok {
		changes = n.Changes()
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		case <-changes:
		case <-t.kick:
			if wait := t.minGap - time.Since(last); wait > 0 {
				select {
				case <-ctx.Done():
					return
				case <-time.After(wait):
				}
			}
		}
		t.Refresh(ctx)
		last = time.Now()
	}
}

// Refresh resolves the spec once and updates the state.
func (t *Target) Refresh(ctx context.Context) error {
	// One refresh at a time: the pool must get each set before the state
	// shows it, in the same order.
	t.refreshMu.Lock()
	defer t.refreshMu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, t.timeout)
	defer cancel()
	eps, err := t.res.Resolve(ctx, t.spec)
	now := time.Now()

	empty := errors.Is(err, ErrNoRecords)
	if empty {
		// An authoritative empty answer (NXDOMAIN, a Service scaled to 0,
		// no EndpointSlices) is an answer, not a failure: the refresh
		// succeeded and found nothing, as Thanos' DNS discovery counts it.
		eps, err = nil, nil
	}

	t.mu.Lock()
	next := t.state.Endpoints
	changed := false
	if err == nil {
		changed = !slices.Equal(eps, next)
		if changed {
			next = eps
		}
	} // else keep the last good endpoints
	t.mu.Unlock()

	// The pool first, then the state: whoever reads the state (ListTargets,
	// a watch) and then fans out finds the endpoints it read already there.
	if changed && t.onUpdate != nil {
		t.onUpdate(callable(next))
	}

	t.mu.Lock()
	s := &t.state
	s.Refreshes++
	s.LastRefresh = now
	errChanged := stableErrText(s.LastError) != stableErrText(err)
	// A first answer that is empty changes no set, but it is news: a
	// watcher waiting for the first answer (a gRPC client) hears of it.
	firstAnswer := err == nil && s.LastSuccess.IsZero()
	s.LastError = err
	if err == nil {
		s.LastSuccess = now
	} else {
		s.RefreshErrors++
	}
	s.Endpoints = next
	if changed || errChanged || firstAnswer {
		s.Version++
		close(t.changed)
		t.changed = make(chan struct{})
	}
	t.mu.Unlock()

	if err != nil {
		t.log.Warn("discovery refresh failed", "query", t.spec.Query(), "err", err, "kept_endpoints", len(next))
	}
	if changed {
		t.log.Info("discovered endpoints changed", "query", t.spec.Query(), "endpoints", len(next), "authoritative_empty", empty)
	}
	return err
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// localAddr matches the local end of a socket in an error's text, as in
// "read udp 127.0.0.1:41234->10.96.0.10:53": a new port every query.
var localAddr = regexp.MustCompile(`\S+->`)

// stableErrText is err's text without what changes between two tries of
// the same failure (the local port of each DNS query), so that an outage
// that goes on is one change, not one per refresh.
func stableErrText(err error) string {
	return localAddr.ReplaceAllString(errText(err), "->")
}

// callable returns the endpoints fan-out should call, eps itself when that
// is all of them.
func callable(eps []Endpoint) []Endpoint {
	if !slices.ContainsFunc(eps, func(e Endpoint) bool { return !e.Callable() }) {
		return eps
	}
	return slices.DeleteFunc(slices.Clone(eps), func(e Endpoint) bool { return !e.Callable() })
}
