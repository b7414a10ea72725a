package fanout

import (
	"context"
	"testing"
	"time"

	"github.com/knowingnode/knowingnode/backend/loadreport"
	knowingnodev1 "github.com/knowingnode/knowingnode/gen/knowingnode/v1"
	"github.com/knowingnode/knowingnode/harness/poll"
)

// A backend gives each connection each new load report once, on whichever
// call comes first: here an EACH fan-out's. EACH reads it into the
// connection's state, so a BALANCED fan-out after it, whose calls carry no
// report, shows the pod's load all the same. (The pods sample once an hour:
// the report of their start is the only one.)
func TestEachCallsReadTheLoadReport(t *testing.T) {
	addrs := startPolicyPods(t, policyPod{load: loadreport.Config{Utilization: 0.6, Interval: time.Hour}},
		policyPod{load: loadreport.Config{Utilization: 0.6, Interval: time.Hour}})
	s, _ := newService(t, Options{WRR: fastWRR}, addrs...)
	pool := s.targets["backends"].pool
	// Connected, with no call made (a call would take the report).
	if err := poll.Until(t.Context(), 10*time.Second, 10*time.Millisecond, "every connection READY", func(context.Context) error {
		bs := pool.Backends()
		for _, b := range bs {
			if !ready(b) {
				return context.DeadlineExceeded
			}
		}
		if len(bs) != len(addrs) {
			return context.DeadlineExceeded
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if resp, err := s.FanOut(t.Context(), &knowingnodev1.FanOutRequest{}); err != nil || resp.Summary.Ok != 2 {
		t.Fatalf("EACH: %v %v", err, resp.GetSummary())
	}
	resp := fanOutPolicy(t, s, "", 20)
	for _, r := range resp.Results {
		if r.Load == nil || r.Load.Reports != 0 || r.Load.ApplicationUtilization != 0.6 {
			t.Errorf("BALANCED result %s: load %v, want the claim 0.6 that the EACH call read, from no report of its own", r.Address, r.Load)
		}
	}
}
