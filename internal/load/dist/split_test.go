package dist

import (
	"slices"
	"testing"
	"time"
)

// The N schedules of a split interleave into the single-process schedule,
// and their shares add up to the rate asked, for N = 1..16 and rates that
// do not divide evenly.
func TestSplitUnionIsSingleSchedule(t *testing.T) {
	for _, rate := range []float64{1, 7, 10, 99, 333.3, 1000, 10001} {
		for _, d := range []time.Duration{time.Second, 2500 * time.Millisecond} {
			single := Calls(rate, d)
			for n := 1; n <= 16; n++ {
				var sumRate float64
				var sumCalls int64
				var union []time.Duration
				var prev int64 = -1
				for i := range n {
					s, err := Split(rate, i, n)
					if err != nil {
						t.Fatal(err)
					}
					sumRate += s.Rate
					c := s.Calls(d)
					sumCalls += c
					// The remainder goes to the lowest indices: shares
					// never grow with the index and differ by at most one.
					if prev >= 0 && (c > prev || prev-c > 1) {
						t.Fatalf("rate %g n %d: worker %d has %d calls after %d", rate, n, i, c, prev)
					}
					prev = c
					// The worker's own schedule: phase, then every 1/share.
					for j := range c {
						due := s.Phase + time.Duration(float64(j)/s.Rate*float64(time.Second))
						if due >= d+time.Microsecond {
							t.Fatalf("rate %g n %d: worker %d call %d due at %v, past %v", rate, n, i, j, due, d)
						}
						union = append(union, due)
					}
				}
				if rel := (sumRate - rate) / rate; rel > 1e-12 || rel < -1e-12 {
					t.Errorf("rate %g n %d: shares add up to %g", rate, n, sumRate)
				}
				if sumCalls != single {
					t.Errorf("rate %g n %d over %v: %d calls, single schedule %d", rate, n, d, sumCalls, single)
				}
				slices.Sort(union)
				for k, due := range union {
					want := time.Duration(float64(k) / rate * float64(time.Second))
					if diff := due - want; diff > time.Microsecond || diff < -time.Microsecond {
						t.Fatalf("rate %g n %d: merged call %d due at %v, single schedule %v", rate, n, k, due, want)
					}
				}
			}
		}
	}
}

func TestSplitRejects(t *testing.T) {
	for _, tc := range []struct {
		rate           float64
		index, workers int
	}{{100, 0, 0}, {100, 3, 3}, {100, -1, 2}, {0, 0, 1}, {-5, 0, 1}, {100, 0, MaxWorkers + 1}} {
		if _, err := Split(tc.rate, tc.index, tc.workers); err == nil {
			t.Errorf("Split(%g, %d, %d) accepted", tc.rate, tc.index, tc.workers)
		}
	}
}
