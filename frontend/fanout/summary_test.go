package fanout

import (
	"maps"
	"testing"

	knowingnodev1 "github.com/knowingnode/knowingnode/gen/knowingnode/v1"
)

// TestSummarizeByZone counts successful calls by the backends' zones as by
// node: a BALANCED result's calls weigh as many, failures and drains count in
// no zone, and a backend without a zone counts in none either.
func TestSummarizeByZone(t *testing.T) {
	ok := func(pod, node, zone string, calls int32) *knowingnodev1.BackendResult {
		return &knowingnodev1.BackendResult{Code: "OK", Calls: calls,
			Identity: &knowingnodev1.Identity{PodName: pod, NodeName: node, Zone: zone}}
	}
	tests := []struct {
		name    string
		results []*knowingnodev1.BackendResult
		want    map[string]int32
		wantOk  int32
	}{
		{name: "none"},
		{
			name:    "two zones, one node each",
			results: []*knowingnodev1.BackendResult{ok("b-0", "n-a", "zone-a", 0), ok("b-1", "n-b", "zone-b", 0), ok("b-2", "n-a", "zone-a", 0)},
			want:    map[string]int32{"zone-a": 2, "zone-b": 1},
			wantOk:  3,
		},
		{
			name:    "balanced calls weigh as many",
			results: []*knowingnodev1.BackendResult{ok("b-0", "n-a", "zone-a", 7), ok("b-1", "n-b", "zone-b", 3)},
			want:    map[string]int32{"zone-a": 7, "zone-b": 3},
			wantOk:  10,
		},
		{
			name: "failures, drains and zoneless backends count in no zone",
			results: []*knowingnodev1.BackendResult{
				ok("b-0", "n-a", "zone-a", 0), ok("b-1", "n-b", "", 0),
				{Code: "UNAVAILABLE"}, {Code: CodeDraining},
			},
			want:   map[string]int32{"zone-a": 1},
			wantOk: 2,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sum := summarize(tt.results, nil, 0)
			if !maps.Equal(sum.ByZone, tt.want) {
				t.Errorf("by zone %v, want %v", sum.ByZone, tt.want)
			}
			if sum.Ok != tt.wantOk {
				t.Errorf("ok %d, want %d", sum.Ok, tt.wantOk)
			}
		})
	}
}
