package matrix

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	knowingnodev1 "github.com/knowingnode/knowingnode/gen/knowingnode/v1"
)

// views answers ListTargets with a DNS target compared against a
// kubernetes:/// one, agreeing or not as set.
type views struct {
	fakeFan
	agree bool
}

func (v *views) ListTargets(context.Context, *knowingnodev1.ListTargetsRequest) (*knowingnodev1.ListTargetsResponse, error) {
	cmp := func(other string) []*knowingnodev1.TargetComparison {
		return []*knowingnodev1.TargetComparison{{Other: other, Agree: v.agree, Summary: "DNS: 2 addresses; API: 3 endpoints"}}
	}
	return &knowingnodev1.ListTargetsResponse{Targets: []*knowingnodev1.TargetState{
		{Name: "dns", Mode: knowingnodev1.DiscoveryMode_DISCOVERY_MODE_DNS, Compare: cmp("api")},
		{Name: "api", Mode: knowingnodev1.DiscoveryMode_DISCOVERY_MODE_KUBERNETES, Compare: cmp("dns")},
	}}, nil
}

// Each disagreement is kept once (from its DNS side) with its length, open
// ones first; the history is bounded; the histogram observes each when it
// ends.
func TestTracker(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	m, err := NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	v := &views{agree: true}
	tr := NewTracker(v, time.Second, 2, m)
	now := time.Unix(1000, 0)
	tr.now = func() time.Time { return now }
	step := func(agree bool, d time.Duration) {
		v.agree = agree
		tr.Poll(t.Context())
		now = now.Add(d)
	}
	step(true, time.Second)
	for _, secs := range []int{5, 30, 45} {
		step(false, time.Duration(secs)*time.Second)
		step(true, time.Second)
	}
	step(false, 7*time.Second)
	l := tr.List()
	if l.Limit != 2 || len(l.Disagreements) != 3 {
		t.Fatalf("%v; want one open and the last 2 ended", l)
	}
	open, last, before := l.Disagreements[0], l.Disagreements[1], l.Disagreements[2]
	if open.End != nil || open.Duration.AsDuration() != 7*time.Second || open.Target != "dns" || open.Other != "api" {
		t.Errorf("open: %v; want dns/api, 7s so far, no end", open)
	}
	if last.Duration.AsDuration() != 45*time.Second || before.Duration.AsDuration() != 30*time.Second || last.End == nil {
		t.Errorf("ended: %v, %v; want 45s then 30s", last, before)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, mf := range mfs {
		if mf.GetName() == "knowingnode_discovery_disagreement_seconds" {
			found = true
			if len(mf.GetMetric()) != 1 {
				t.Fatalf("%d series, want 1 (dns, api)", len(mf.GetMetric()))
			}
			h := mf.GetMetric()[0].GetHistogram()
			if h.GetSampleCount() != 3 || h.GetSampleSum() != 80 {
				t.Errorf("histogram: %d samples, sum %v; want 3 (5+30+45 = 80s)", h.GetSampleCount(), h.GetSampleSum())
			}
		}
	}
	if !found {
		t.Error("no knowingnode_discovery_disagreement_seconds")
	}
}
