package fanout

import (
	"strings"

	knowingnodev1 "github.com/knowingnode/knowingnode/gen/knowingnode/v1"
	"github.com/knowingnode/knowingnode/internal/discovery"
)

// endpointMessage is ep as ListTargets shows it: with what the
// EndpointSlices say of it, for kubernetes targets.
func endpointMessage(ep discovery.Endpoint) *knowingnodev1.Endpoint {
	m := &knowingnodev1.Endpoint{Address: ep.Addr, DnsName: ep.DNSName}
	if s := ep.Slice; s.Known {
		m.Slice = &knowingnodev1.EndpointSliceInfo{
			Ready:       s.Ready,
			Serving:     s.Serving,
			Terminating: s.Terminating,
			NodeName:    s.NodeName,
			Zone:        s.Zone,
			Hostname:    s.Hostname,
			TargetRef:   s.TargetRef,
			HintZones:   split(s.HintZones),
			HintNodes:   split(s.HintNodes),
			Slices:      split(s.Slices),
		}
	}
	return m
}

func split(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, ",")
}
