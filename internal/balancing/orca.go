package balancing

import (
	v3orcapb "github.com/cncf/xds/go/xds/data/orca/v3"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"
)

// TrailerKey is the trailer in which a backend returns its ORCA load
// report with each call (grpc-go's orca.CallMetricsServerOption).
const TrailerKey = "endpoint-load-metrics-bin"

// Report is the part of an ORCA load report knowingnode shows.
type Report struct {
	CPUUtilization         float64
	ApplicationUtilization float64
	QPS                    float64 // calls/s the backend served (all clients)
	EPS                    float64 // of them, failed
}

// ParseTrailer reads the load report in a call's trailer; ok is false when
// the backend sent none (or one that does not decode).
func ParseTrailer(md metadata.MD) (r Report, ok bool) {
	v := md.Get(TrailerKey)
	if len(v) == 0 {
		return Report{}, false
	}
	var lr v3orcapb.OrcaLoadReport
	if err := proto.Unmarshal([]byte(v[0]), &lr); err != nil {
		return Report{}, false
	}
	return FromProto(&lr), true
}

// FromProto converts an ORCA report, as the OOB stream sends it.
func FromProto(lr *v3orcapb.OrcaLoadReport) Report {
	return Report{CPUUtilization: lr.GetCpuUtilization(), ApplicationUtilization: lr.GetApplicationUtilization(),
		QPS: lr.GetRpsFractional(), EPS: lr.GetEps()}
}

// Weight is the weight grpc-go's weighted_round_robin derives from r:
// rate / (utilization + error rate), utilization being the application's
// when set, else the CPU's (penalty 1, its default). 0 when r carries no
// rate or utilization, which that policy ignores.
func (r Report) Weight() float64 {
	u := r.ApplicationUtilization
	if u == 0 {
		u = r.CPUUtilization
	}
	if u == 0 || r.QPS == 0 {
		return 0
	}
	return r.QPS / (u + r.EPS/r.QPS)
}
