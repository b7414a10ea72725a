package fanout

import (
	"slices"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	knowingnodev1 "github.com/knowingnode/knowingnode/gen/knowingnode/v1"
)

// sample is one call sent: its latency, and its code as an index of
// codeNames. Calls not sent (DRAINING, NOT_SENT) are never samples.
type sample struct {
	lat  time.Duration
	code int
}

// summarize counts results by outcome, node, pod and zone, gathers the load
// BALANCED's pods reported (LoadByPod), and takes latency
// quantiles over sent, one sample per call sent (EACH: every call made;
// BALANCED: every call, not one per group). They are exact, nearest rank (the
// p-th percentile is the ceil(p·n/100)-th fastest): a fan-out makes at most
// MaxCount calls, so sorting them all costs less than a histogram's fixed
// buckets would lose.
func summarize(results []*knowingnodev1.BackendResult, sent []sample, took time.Duration) *knowingnodev1.FanOutSummary {
	sum := &knowingnodev1.FanOutSummary{
		ByNode:   map[string]int32{},
		ByPod:    map[string]int32{},
		ByCode:   map[string]int32{},
		ByZone:   map[string]int32{},
		Duration: durationpb.New(took),
	}
	for _, r := range results {
		n := max(r.Calls, 1)
		sum.Total += n
		sum.ByCode[r.Code] += n
		switch {
		case r.Identity != nil:
			sum.Ok += n
			sum.ByNode[r.Identity.NodeName] += n
			sum.ByPod[r.Identity.PodName] += n
			if z := r.Identity.Zone; z != "" {
				sum.ByZone[z] += n
			}
			if r.Load != nil {
				addLoad(sum, r.Identity.PodName, r.Load)
			}
		case r.Code == CodeDraining:
			sum.Draining += n
		case r.Code == CodeNotSent:
			sum.NotSent += n
		default:
			sum.Failed += n
		}
	}
	if len(sent) > 0 {
		lats := make([]time.Duration, len(sent))
		for i, s := range sent {
			lats[i] = s.lat
		}
		slices.Sort(lats)
		q := func(p int) *durationpb.Duration {
			i := (p*len(lats)+99)/100 - 1
			return durationpb.New(lats[max(i, 0)])
		}
		sum.LatencyMin = durationpb.New(lats[0])
		sum.LatencyP50 = q(50)
		sum.LatencyP99 = q(99)
		sum.LatencyMax = durationpb.New(lats[len(lats)-1])
	}
	return sum
}

// addLoad puts a BALANCED group's load under its pod. A pod reached in
// two groups (two addresses) gets the reports of both and the values of
// the later one; the groups' own loads are shared, never changed.
func addLoad(sum *knowingnodev1.FanOutSummary, pod string, l *knowingnodev1.BackendLoad) {
	if sum.LoadByPod == nil {
		sum.LoadByPod = map[string]*knowingnodev1.BackendLoad{}
	}
	prev, ok := sum.LoadByPod[pod]
	if !ok {
		sum.LoadByPod[pod] = l
		return
	}
	merged := proto.CloneOf(l)
	merged.Reports += prev.Reports
	sum.LoadByPod[pod] = merged
}

// normaliseMode turns UNSPECIFIED into EACH, the mode it stands for; any
// other value is kept (checkRequest refuses the unknown ones).
func normaliseMode(m knowingnodev1.FanOutMode) knowingnodev1.FanOutMode {
	if m == knowingnodev1.FanOutMode_FAN_OUT_MODE_UNSPECIFIED {
		return knowingnodev1.FanOutMode_FAN_OUT_MODE_EACH
	}
	return m
}

func shortMode(m knowingnodev1.FanOutMode) string {
	return strings.TrimPrefix(m.String(), "FAN_OUT_MODE_")
}

// modeLabel is the mode as a metric label: an unknown number from a request
// is "unknown", so requests cannot mint series.
func modeLabel(m knowingnodev1.FanOutMode) string {
	if _, ok := knowingnodev1.FanOutMode_name[int32(m)]; !ok {
		return "unknown"
	}
	return shortMode(m)
}
