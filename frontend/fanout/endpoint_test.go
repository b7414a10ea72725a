package fanout

import (
	"testing"

	"google.golang.org/protobuf/proto"

	knowingnodev1 "github.com/knowingnode/knowingnode/gen/knowingnode/v1"
	"github.com/knowingnode/knowingnode/internal/discovery"
)

func TestEndpointMessage(t *testing.T) {
	tests := []struct {
		name string
		ep   discovery.Endpoint
		want *knowingnodev1.Endpoint
	}{
		{
			name: "DNS endpoint: no slice details",
			ep:   discovery.Endpoint{Addr: "10.0.0.1:9090", DNSName: "backend.ns.svc.cluster.local"},
			want: &knowingnodev1.Endpoint{Address: "10.0.0.1:9090", DnsName: "backend.ns.svc.cluster.local"},
		},
		{
			name: "EndpointSlice endpoint: conditions, topology, lists split",
			ep: discovery.Endpoint{Addr: "[fd00::1]:9090", Slice: discovery.SliceInfo{
				Known: true, Serving: true, Terminating: true, NodeName: "node-1", Zone: "zone-a",
				Hostname: "backend-0", TargetRef: "Pod/backend-0", HintZones: "zone-a,zone-b", Slices: "s-1,s-2",
			}},
			want: &knowingnodev1.Endpoint{Address: "[fd00::1]:9090", Slice: &knowingnodev1.EndpointSliceInfo{
				Serving: true, Terminating: true, NodeName: "node-1", Zone: "zone-a", Hostname: "backend-0",
				TargetRef: "Pod/backend-0", HintZones: []string{"zone-a", "zone-b"}, Slices: []string{"s-1", "s-2"},
			}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := endpointMessage(tt.ep); !proto.Equal(got, tt.want) {
				t.Errorf("endpointMessage = %v, want %v", got, tt.want)
			}
		})
	}
}
