package matrix

import (
	"context"
	"slices"
	"sync"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	knowingnodev1 "github.com/knowingnode/knowingnode/gen/knowingnode/v1"
)

// DefaultHistory bounds the disagreements kept.
const DefaultHistory = 100

// Tracker watches, for every Service configured both through DNS and
// through kubernetes:/// (the fan-out's target comparisons), when the two
// views disagree on the ready endpoints and for how long: the staleness of
// DNS answers (TTLs, caches, the 30-60 s CoreDNS users report). It keeps a
// bounded history and observes each disagreement's length, when it ends, in
// knowingnode_discovery_disagreement_seconds.
type Tracker struct {
	list    func(context.Context) (*knowingnodev1.ListTargetsResponse, error)
	every   time.Duration
	limit   int
	metrics *Metrics
	now     func() time.Time

	mu      sync.Mutex
	open    map[[2]string]*knowingnodev1.Disagreement
	history []*knowingnodev1.Disagreement // ended, oldest first, at most limit
}

// NewTracker polls lister every interval once Run is called; limit <= 0
// means DefaultHistory.
func NewTracker(lister FanOuter, every time.Duration, limit int, m *Metrics) *Tracker {
	if limit <= 0 {
		limit = DefaultHistory
	}
	return &Tracker{
		list: func(ctx context.Context) (*knowingnodev1.ListTargetsResponse, error) {
			return lister.ListTargets(ctx, &knowingnodev1.ListTargetsRequest{})
		},
		every: every, limit: limit, metrics: m, now: time.Now,
		open: map[[2]string]*knowingnodev1.Disagreement{},
	}
}

// Run polls until ctx ends; the caller joins it.
func (t *Tracker) Run(ctx context.Context) {
	tick := time.NewTicker(t.every)
	defer tick.Stop()
	for {
		t.Poll(ctx)
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// Poll compares once.
func (t *Tracker) Poll(ctx context.Context) {
	lt, err := t.list(ctx)
	if err != nil {
		return
	}
	now := t.now()
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, ts := range lt.GetTargets() {
		if ts.GetMode() == knowingnodev1.DiscoveryMode_DISCOVERY_MODE_KUBERNETES {
			continue // each pair once: from its DNS side
		}
		for _, c := range ts.GetCompare() {
			k := [2]string{ts.GetName(), c.GetOther()}
			d, isOpen := t.open[k]
			switch {
			case !c.GetAgree() && !isOpen:
				t.open[k] = &knowingnodev1.Disagreement{Target: k[0], Other: k[1], Start: timestamppb.New(now), Summary: c.GetSummary()}
			case c.GetAgree() && isOpen:
				delete(t.open, k)
				took := now.Sub(d.Start.AsTime())
				d.End, d.Duration = timestamppb.New(now), durationpb.New(took)
				t.metrics.disagreed(k[0], k[1], took.Seconds())
				t.history = append(t.history, d)
				if len(t.history) > t.limit {
					t.history = t.history[len(t.history)-t.limit:]
				}
			}
		}
	}
}

// List is the open disagreements, then the ended ones, most recent first.
func (t *Tracker) List() *knowingnodev1.ListDisagreementsResponse {
	now := t.now()
	t.mu.Lock()
	defer t.mu.Unlock()
	resp := &knowingnodev1.ListDisagreementsResponse{Limit: int32(t.limit)}
	for _, d := range t.open {
		c := &knowingnodev1.Disagreement{Target: d.Target, Other: d.Other, Start: d.Start, Summary: d.Summary,
			Duration: durationpb.New(now.Sub(d.Start.AsTime()))}
		resp.Disagreements = append(resp.Disagreements, c)
	}
	slices.SortFunc(resp.Disagreements, func(a, b *knowingnodev1.Disagreement) int {
		return b.Start.AsTime().Compare(a.Start.AsTime())
	})
	for i := len(t.history) - 1; i >= 0; i-- {
		resp.Disagreements = append(resp.Disagreements, t.history[i])
	}
	return resp
}
