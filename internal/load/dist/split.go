package dist

import (
	"fmt"
	"math"
	"time"
)

// Share is one worker's part of an open-loop run at rate R over N workers.
//
// The single-process schedule sends call k at t0 + k/R. Worker i takes the
// calls k ≡ i (mod N): rate R/N, its first call at t0 + i/R. The N
// schedules interleave into the single one, so N workers never fire in
// lock-step bursts of N calls, and over any duration the calls split as
// evenly as they can, the remainder going to the lowest indices.
type Share struct {
	Index, Workers int
	Rate           float64       // R/N calls per second
	Phase          time.Duration // i/R: the first call's delay after t0
	total          float64       // R
}

// Split returns worker index's share of rate over workers.
func Split(rate float64, index, workers int) (Share, error) {
	switch {
	case workers < 1 || workers > MaxWorkers:
		return Share{}, fmt.Errorf("workers %d is outside 1..%d", workers, MaxWorkers)
	case index < 0 || index >= workers:
		return Share{}, fmt.Errorf("worker index %d is outside 0..%d", index, workers-1)
	case !(rate > 0) || math.IsInf(rate, 0):
		return Share{}, fmt.Errorf("rate %g is not a positive number of calls/s", rate)
	}
	return Share{
		Index: index, Workers: workers, total: rate,
		Rate:  rate / float64(workers),
		Phase: time.Duration(float64(index) / rate * float64(time.Second)),
	}, nil
}

// Calls is how many calls the single schedule makes in [t0, t0+d): the
// calls k with k/R < d.
func Calls(rate float64, d time.Duration) int64 {
	return int64(math.Ceil(rate * d.Seconds()))
}

// Calls is how many of the single schedule's calls in [t0, t0+d) are this
// worker's: the k < Calls(R, d) with k ≡ Index (mod Workers).
func (s Share) Calls(d time.Duration) int64 {
	n := Calls(s.total, d)
	q, r := n/int64(s.Workers), n%int64(s.Workers)
	if int64(s.Index) < r {
		q++
	}
	return q
}

// Due is when the worker's call j is due, after t0: Phase + j/Rate, which
// is the single schedule's call Index + j·Workers.
func (s Share) Due(j int64) time.Duration {
	k := float64(int64(s.Index) + j*int64(s.Workers))
	return time.Duration(k / s.total * float64(time.Second))
}
