package engine

// Load is the load report (ORCA) a pod returned with a call.
type Load struct {
	CPUUtilization         float64
	ApplicationUtilization float64
	QPS                    float64 // calls/s the pod served, to every client
	EPS                    float64 // failed calls/s
	// Weight is what weighted_round_robin derives from the report:
	// QPS / (utilization + EPS/QPS), the utilization being the
	// application's when set, else the CPU's; 0 when it would ignore it.
	Weight float64
}

// PodLoad is what a pod reported with the calls it answered in a window
// (or the run): each value is the mean over those calls' reports (a call
// whose trailer had none carries its pod's last: a backend gives each
// connection each new sample once), and the
// weight is the mean of their weights. The weight is the one
// weighted_round_robin would compute from the same reports; the client's
// own policy used it only under weighted_round_robin, and not before its
// blackout period ended.
type PodLoad struct {
	Reports                int64   `json:"reports"` // calls with a report, theirs or their pod's last
	CPUUtilization         float64 `json:"cpuUtilization"`
	ApplicationUtilization float64 `json:"applicationUtilization,omitempty"`
	QPS                    float64 `json:"qps"`
	EPS                    float64 `json:"eps,omitempty"`
	Weight                 float64 `json:"weight"`
	// WeightShare is Weight over the sum of the pods' weights: the share
	// of calls weighted_round_robin aims to give the pod.
	WeightShare float64 `json:"weightShare"`
}

// addLoad sums a report into the pod's entry (means are taken at finish).
func addLoad(m map[string]*PodLoad, pod string, l *Load) {
	if l == nil || pod == "" {
		return
	}
	p, ok := m[pod]
	if !ok {
		if len(m) >= MaxKeys {
			return // names past MaxKeys are counted in ByPod only
		}
		p = &PodLoad{}
		m[pod] = p
	}
	p.Reports++
	p.CPUUtilization += l.CPUUtilization
	p.ApplicationUtilization += l.ApplicationUtilization
	p.QPS += l.QPS
	p.EPS += l.EPS
	p.Weight += l.Weight
}

// finishLoad turns the sums into means and weight shares, in a fresh map.
func finishLoad(m map[string]*PodLoad) map[string]*PodLoad {
	if len(m) == 0 {
		return nil
	}
	out := make(map[string]*PodLoad, len(m))
	var total float64
	for pod, p := range m {
		n := float64(p.Reports)
		q := &PodLoad{Reports: p.Reports, CPUUtilization: p.CPUUtilization / n, ApplicationUtilization: p.ApplicationUtilization / n,
			QPS: p.QPS / n, EPS: p.EPS / n, Weight: p.Weight / n}
		total += q.Weight
		out[pod] = q
	}
	if total > 0 {
		for _, q := range out {
			q.WeightShare = q.Weight / total
		}
	}
	return out
}
