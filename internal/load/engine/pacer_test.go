package engine

import (
	"testing"
	"time"
)

// The schedule alone, no clock: exactly N = ⌈rate × d⌉ calls, the first due
// at the start, evenly spaced, all before d.
func TestScheduleTable(t *testing.T) {
	for _, tc := range []struct {
		rate  float64
		d     time.Duration
		count int64
		want  int64
	}{
		{1, time.Second, 0, 1},
		{1, 10 * time.Second, 0, 10},
		{1, 2500 * time.Millisecond, 0, 3}, // 0, 1, 2 s
		{1, 100 * time.Millisecond, 0, 1},
		{3, time.Second, 0, 3},
		{3, 2 * time.Second, 0, 6}, // the old pacer sent 5, over 1.67 s
		{3, 1500 * time.Millisecond, 0, 5},
		{3, 100 * time.Millisecond, 0, 1},
		{1000, 2 * time.Second, 0, 2000}, // the old pacer sent 1,999
		{1000, 1234567 * time.Microsecond, 0, 1235},
		{1000, 1500 * time.Microsecond, 0, 2},
		{100000, time.Second, 0, 100000},
		{100000, 10500 * time.Nanosecond, 0, 2},
		{100000, 333333 * time.Microsecond, 0, 33334},
		{7, 3 * time.Second, 0, 21}, // 1/7 s is not a whole number of ns
		{7, 3*time.Second + time.Nanosecond, 0, 22},
		{0.5, 5 * time.Second, 0, 3}, // 0, 2, 4 s
		{3, 2 * time.Second, 4, 4},   // a count caps N
		{3, 0, 4, 4},                 // a count alone
	} {
		s := NewSchedule(tc.rate, 0, tc.d, tc.count)
		if s.N != tc.want {
			t.Errorf("%g/s over %v (count %d): N = %d, want %d", tc.rate, tc.d, tc.count, s.N, tc.want)
			continue
		}
		if s.Due(0) != 0 {
			t.Errorf("%g/s over %v: call 0 due at %v, want the start", tc.rate, tc.d, s.Due(0))
		}
		if tc.d > 0 && tc.count == 0 {
			if last := s.Due(s.N - 1); last >= tc.d {
				t.Errorf("%g/s over %v: last call due at %v, not before the end", tc.rate, tc.d, last)
			}
			if next := s.Due(s.N); next < tc.d {
				t.Errorf("%g/s over %v: call %d due at %v, before the end, is missing", tc.rate, tc.d, s.N, next)
			}
		}
		// Walk the schedule as the pacer does, waking exactly when told:
		// every call once, each at its time, in order.
		var issued int64
		var now time.Duration
		for steps := 0; ; steps++ {
			st := s.Next(issued, now)
			if st.Done {
				break
			}
			if st.Wait > 0 {
				now += st.Wait
				continue
			}
			if st.From != issued || st.To <= st.From {
				t.Fatalf("%g/s: step %+v after %d issued", tc.rate, st, issued)
			}
			for i := st.From; i < st.To; i++ {
				if l := s.Lateness(i, now); l != 0 {
					t.Fatalf("%g/s: call %d is %v late with a punctual pacer", tc.rate, i, l)
				}
			}
			issued = st.To
			if steps > 3*int(s.N)+3 {
				t.Fatalf("%g/s: no end after %d steps", tc.rate, steps)
			}
		}
		if issued != s.N {
			t.Errorf("%g/s over %v: walked %d calls, want %d", tc.rate, tc.d, issued, s.N)
		}
	}
}

// A pacer that wakes late loses nothing and shifts nothing: the calls due
// meanwhile come at once, each with its own intended time and lateness.
func TestScheduleLateWake(t *testing.T) {
	s := NewSchedule(100, 0, time.Second, 0) // every 10 ms
	st := s.Next(0, 55*time.Millisecond)
	if st.From != 0 || st.To != 6 {
		t.Fatalf("at 55ms: calls [%d, %d) due, want [0, 6)", st.From, st.To)
	}
	if l := s.Lateness(0, 55*time.Millisecond); l != 55*time.Millisecond {
		t.Errorf("call 0 is %v late, want 55ms", l)
	}
	if l := s.Lateness(5, 55*time.Millisecond); l != 5*time.Millisecond {
		t.Errorf("call 5 is %v late, want 5ms", l)
	}
	st = s.Next(6, 55*time.Millisecond)
	if st.Wait != 5*time.Millisecond {
		t.Errorf("after catching up: wait %v, want 5ms (call 6 at 60ms)", st.Wait)
	}
	// Far past the end: every remaining call is due, then done.
	if st = s.Next(6, time.Hour); st.To != 100 {
		t.Errorf("an hour late: due up to %d, want all 100", st.To)
	}
	if st = s.Next(100, time.Hour); !st.Done {
		t.Errorf("all issued: %+v, want done", st)
	}
}

// The phase shifts every call, and only that: engines sharing a rate
// interleave.
func TestSchedulePhase(t *testing.T) {
	s := NewSchedule(10, 25*time.Millisecond, time.Second, 0)
	if s.N != 10 || s.Due(0) != 25*time.Millisecond || s.Due(9) != 925*time.Millisecond {
		t.Errorf("10/s with phase 25ms: N %d, due %v … %v; want 10 calls at 25ms … 925ms", s.N, s.Due(0), s.Due(9))
	}
	if st := s.Next(0, 0); st.Wait != 25*time.Millisecond {
		t.Errorf("at the start: %+v, want a 25ms wait", st)
	}
	if n := s.DueBy(24 * time.Millisecond); n != 0 {
		t.Errorf("due by 24ms: %d, want 0", n)
	}
	if n := s.DueBy(125 * time.Millisecond); n != 2 {
		t.Errorf("due by 125ms: %d, want 2", n)
	}
}
