package engine

import (
	"math"
	"time"
)

// Schedule is an open loop's absolute schedule: call i is due Due(i) =
// Phase + i/Rate after the start, for i = 0 … N-1. It holds no clock: the
// pacer asks it, at each wake-up, which calls are due and how long to sleep,
// so being woken late never shifts the calls after (vegeta's Pacer and k6's
// constant-arrival-rate executor work the same way).
type Schedule struct {
	Rate  float64       // calls per second, > 0
	Phase time.Duration // offset of call 0 from the start
	N     int64         // calls in the schedule
}

// NewSchedule is the schedule of rate calls/s over d, offset by phase: N is
// the number of calls due before d ends, i.e. the i with i/rate < d, which
// is ⌈rate × d⌉. So 3/s over 2 s is 6 calls (0 s … 1.67 s), 3/s over
// 1.5 s is 5, and any rate over any d > 0 is at least one call, due at the
// start. A count > 0 caps N (with d == 0, N is count). The end, phase + d,
// does not move with the cap.
func NewSchedule(rate float64, phase, d time.Duration, count int64) Schedule {
	s := Schedule{Rate: rate, Phase: phase}
	if d > 0 {
		n := int64(math.Ceil(rate * d.Seconds()))
		// Agree exactly with offset's rounding at the edge: call n-1 is the
		// last one due strictly before d.
		for n > 0 && offset(n-1, rate) >= d {
			n--
		}
		for offset(n, rate) < d {
			n++
		}
		s.N = n
	}
	if count > 0 && (d <= 0 || count < s.N) {
		s.N = count
	}
	return s
}

// offset is i/rate, rounded to the nanosecond.
func offset(i int64, rate float64) time.Duration {
	return time.Duration(math.Round(float64(i) / rate * float64(time.Second)))
}

// Due is how long after the start call i is due.
func (s Schedule) Due(i int64) time.Duration { return s.Phase + offset(i, s.Rate) }

// DueBy is how many calls are due at elapsed since the start (Due(i) ≤
// elapsed), at most N.
func (s Schedule) DueBy(elapsed time.Duration) int64 {
	if elapsed < s.Phase || s.N == 0 {
		return 0
	}
	k := int64((elapsed-s.Phase).Seconds()*s.Rate) + 1
	for k > 0 && s.Due(k-1) > elapsed {
		k--
	}
	for k < s.N && s.Due(k) <= elapsed {
		k++
	}
	return min(k, s.N)
}

// Step is what the pacer does when it wakes.
type Step struct {
	// Calls [From, To) are due now; call i is Lateness(i) late.
	From, To int64
	// When none is due: how long until the next one.
	Wait time.Duration
	// Every call of the schedule has been issued.
	Done bool
}

// Next is the pacer's step at elapsed since the start, having issued the
// calls before issued.
func (s Schedule) Next(issued int64, elapsed time.Duration) Step {
	if issued >= s.N {
		return Step{From: issued, To: issued, Done: true}
	}
	if to := s.DueBy(elapsed); to > issued {
		return Step{From: issued, To: to}
	}
	return Step{From: issued, To: issued, Wait: s.Due(issued) - elapsed}
}

// Lateness is how late call i goes out at elapsed since the start: the
// wait before it, part of its measured latency.
func (s Schedule) Lateness(i int64, elapsed time.Duration) time.Duration {
	return max(0, elapsed-s.Due(i))
}
