package dist

import (
	"fmt"
	"time"

	"github.com/knowingnode/knowingnode/internal/load/engine"
)

// Thresholds bound a run's merged result; zero fields are not checked.
type Thresholds struct {
	MaxP99       time.Duration
	MaxErrorRate float64 // failed calls over completed calls, 0..1
}

// Check lists the thresholds sum breaks, each in one line naming the
// figure and the bound; empty means the run passes.
func (t Thresholds) Check(sum *engine.Stats) []string {
	var out []string
	if t.MaxP99 > 0 && sum.Latency.P99 > t.MaxP99 {
		out = append(out, fmt.Sprintf("p99 %v is above --max-p99 %v", sum.Latency.P99, t.MaxP99))
	}
	if t.MaxErrorRate > 0 {
		if n := sum.Completed(); n > 0 {
			if r := float64(sum.Failed) / float64(n); r > t.MaxErrorRate {
				out = append(out, fmt.Sprintf("error rate %.4f (%d of %d failed) is above --max-error-rate %g", r, sum.Failed, n, t.MaxErrorRate))
			}
		}
	}
	return out
}
