package node

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// loadStats is what continuous EACH and BALANCED load through a frontend saw.
type loadStats struct {
	eachCalls, eachWhole, eachBackendErr int
	eachAllDraining                      int // EACH fan-outs that answered only DRAINING
	balCalls, balFailed, balTotal        int
	samples                              []sample       // the pod IPs each EACH fan-out reached, and when
	eachWhy                              map[string]int // "CODE message" of failed EACH results
	failedPods                           map[string]int // pod (or address) of failed EACH results
}

type sample struct {
	at  time.Time
	ips []string
}

func (s *loadStats) String() string {
	why := ""
	for _, w := range slices.Sorted(maps.Keys(s.eachWhy)) {
		why += fmt.Sprintf(" [%d× %s]", s.eachWhy[w], w)
	}
	return fmt.Sprintf("EACH %d fan-outs, %d failed as a whole, %d only DRAINING, %d backend calls failed%s; BALANCED %d calls, %d failed",
		s.eachCalls, s.eachWhole, s.eachAllDraining, s.eachBackendErr, why, s.balTotal, s.balFailed)
}

// load is continuous EACH (no pause) and BALANCED count=50 fan-outs through
// the frontend at base until stop. A fan-out failing as a whole fails the
// test; a failed BALANCED call too, unless vip (a ClusterIP client loses
// the calls on a connection to a pod that goes away: counted, not failed).
type load struct {
	stop func() *loadStats
}

func startLoad(t *testing.T, base string, vip bool) load {
	st := &loadStats{eachWhy: map[string]int{}, failedPods: map[string]int{}}
	var mu sync.Mutex
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		for ctx.Err() == nil {
			r, err := fanout(fresh, base, "mode=EACH")
			mu.Lock()
			st.eachCalls++
			switch sum := r.GetSummary(); {
			case err != nil || sum.GetOk()+sum.GetDraining() == 0:
				st.eachWhole++
				t.Errorf("EACH fan-out failed as a whole: %v %v", err, sum)
			case sum.GetOk() == 0:
				// Every endpoint announced its drain (a VIP whose pod
				// drains while no new connection reached a ready one):
				// draining is not failing, but it is counted.
				st.eachAllDraining++
			}
			st.eachBackendErr += int(r.GetSummary().GetFailed())
			var ips []string
			for _, x := range r.GetResults() {
				if x.Identity != nil {
					ips = append(ips, x.GetIdentity().GetPodIp())
				}
				if x.Code != "OK" {
					t.Logf("%s EACH: %s (%s): %s %s", r.at.Format("15:04:05.000"), x.Address, x.DnsName, x.Code, x.Message)
					st.eachWhy[x.Code+" "+x.Message]++
					who := x.Address // the pod's name when discovery knows it
					if x.DnsName != "" {
						who = strings.SplitN(x.DnsName, ".", 2)[0]
					}
					st.failedPods[who]++
				}
			}
			st.samples = append(st.samples, sample{r.at, ips})
			mu.Unlock()
			time.Sleep(100 * time.Millisecond)
		}
	}()
	go func() {
		defer wg.Done()
		for ctx.Err() == nil {
			r, err := fanout(fresh, base, "mode=BALANCED&count=50")
			mu.Lock()
			st.balCalls++
			if err != nil {
				st.balFailed += 50
				t.Errorf("BALANCED fan-out failed as a whole: %v", err)
			} else {
				st.balFailed += int(r.GetSummary().GetFailed())
				st.balTotal += int(r.GetSummary().GetTotal())
				for _, x := range r.GetResults() {
					if x.Code != "OK" {
						report := t.Errorf
						if vip {
							report = t.Logf
						}
						report("BALANCED: %d calls to %s: %s %s", x.Calls, x.Address, x.Code, x.Message)
					}
				}
			}
			mu.Unlock()
			time.Sleep(20 * time.Millisecond)
		}
	}()
	return load{stop: sync.OnceValue(func() *loadStats {
		cancel()
		wg.Wait()
		return st
	})}
}
