package discovery

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/knowingnode/knowingnode/harness/poll"
)

// fakeAPI is client-go's fake clientset whose EndpointSlice watches are
// fake watches the test drives, and whose lists and watches fail like an
// unreachable API server while down is set.
type fakeAPI struct {
	client  *fake.Clientset
	watches chan *watch.FakeWatcher

	mu   sync.Mutex
	down error
}

func newFakeAPI(t *testing.T, slices ...*discoveryv1.EndpointSlice) *fakeAPI {
	f := &fakeAPI{client: fake.NewClientset(), watches: make(chan *watch.FakeWatcher, 100)}
	for _, s := range slices {
		if err := f.client.Tracker().Add(s); err != nil {
			t.Fatal(err)
		}
	}
	f.client.PrependReactor("list", "endpointslices", func(k8stesting.Action) (bool, runtime.Object, error) {
		if err := f.err(); err != nil {
			return true, nil, err
		}
		return false, nil, nil // the tracker answers
	})
	f.client.PrependWatchReactor("endpointslices", func(k8stesting.Action) (bool, watch.Interface, error) {
		if err := f.err(); err != nil {
			return true, nil, err
		}
		w := watch.NewFakeWithChanSize(10, false)
		f.watches <- w
		return true, w, nil
	})
	return f
}

func (f *fakeAPI) err() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.down
}

func (f *fakeAPI) setDown(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.down = err
}

// latest is the watch the watcher opened last.
func (f *fakeAPI) latest(t *testing.T) *watch.FakeWatcher {
	t.Helper()
	select {
	case w := <-f.watches:
		for len(f.watches) > 0 {
			w = <-f.watches
		}
		return w
	case <-time.After(10 * time.Second):
		t.Fatal("the watcher opened no watch in 10s")
		return nil
	}
}

// refreshedTo refreshes target until its endpoints are want (as short()).
func refreshedTo(t *testing.T, target *Target, what string, want []string, wantErr bool) {
	t.Helper()
	poll.T(t, 10*time.Second, what, func(ctx context.Context) error {
		err := target.Refresh(ctx)
		got := short(target.State().Endpoints)
		if !slices.Equal(got, want) || (err != nil) != wantErr {
			return fmt.Errorf("endpoints %v, error %v; want %v, error %v", got, err, want, wantErr)
		}
		return nil
	})
}

// TestKubernetesWatcherFollowsSlices drives the EndpointSlice watcher with
// client-go's fake clientset and watch: slices added and removed, an outage
// (the watch breaks, lists and watches refused) that keeps the last set and
// shows the error, and the resume.
func TestKubernetesWatcherFollowsSlices(t *testing.T) {
	grpcPort := map[string]int32{"grpc": 9090}
	v4 := discoveryv1.AddressTypeIPv4
	inNS := func(s *discoveryv1.EndpointSlice) *discoveryv1.EndpointSlice { s.Namespace = "ns"; return s }
	a := inNS(slice("backend-a", v4, grpcPort, ep("10.0.0.1", "n1", "z1", "ready"), ep("10.0.0.2", "n2", "z1", "ready")))
	b := inNS(slice("backend-b", v4, grpcPort, ep("10.0.0.3", "n3", "z2", "ready")))
	c := inNS(slice("backend-c", v4, grpcPort, ep("10.0.0.4", "n4", "z2", "ready")))
	other := inNS(slice("other-a", v4, grpcPort, ep("10.0.0.9", "n9", "z9", "ready")))
	other.Labels[discoveryv1.LabelServiceName] = "other"

	api := newFakeAPI(t, a, other)
	spec, err := ParseTarget("backend=kubernetes:///backend.ns:grpc")
	if err != nil {
		t.Fatal(err)
	}
	w, err := NewKubernetesWatcher(api.client, spec, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	target := NewTarget(spec, w, TargetOptions{Interval: time.Hour, Timeout: 5 * time.Second})

	refreshedTo(t, target, "the first list (another Service's slice left out)",
		[]string{"10.0.0.1:9090[RS]@backend-a", "10.0.0.2:9090[RS]@backend-a"}, false)
	fw := api.latest(t)

	fw.Add(b)
	refreshedTo(t, target, "a slice added",
		[]string{"10.0.0.1:9090[RS]@backend-a", "10.0.0.2:9090[RS]@backend-a", "10.0.0.3:9090[RS]@backend-b"}, false)

	fw.Delete(a)
	api.client.Tracker().Delete(discoveryv1.SchemeGroupVersion.WithResource("endpointslices"), "ns", "backend-a")
	refreshedTo(t, target, "a slice removed", []string{"10.0.0.3:9090[RS]@backend-b"}, false)

	// The outage: the watch breaks, and the API server refuses connections.
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}
	api.setDown(refused)
	fw.Stop()
	refreshedTo(t, target, "the outage shown, the last set kept", []string{"10.0.0.3:9090[RS]@backend-b"}, true)
	if st := target.State(); st.LastError == nil || !strings.Contains(st.LastError.Error(), "connection refused") {
		t.Errorf("state during the outage: error %v; want the API server's refusal shown", st.LastError)
	}

	// The resume: the next watch delivers what changed meanwhile.
	api.client.Tracker().Add(c)
	api.setDown(nil)
	fw = api.latest(t)
	fw.Add(c)
	refreshedTo(t, target, "the resume", []string{"10.0.0.3:9090[RS]@backend-b", "10.0.0.4:9090[RS]@backend-c"}, false)
	if st := target.State(); st.LastError != nil {
		t.Errorf("after the resume: error %v, want none", st.LastError)
	}

	// Every slice gone: an empty answer, not an error.
	fw.Delete(b)
	fw.Delete(c)
	refreshedTo(t, target, "every slice gone", nil, false)
}

// TestReconnectDelayIsJittered: the waits between two tries during an
// outage spread around ReconnectEvery, so that frontends cut off together
// do not relist in lockstep.
func TestReconnectDelayIsJittered(t *testing.T) {
	lo, hi := time.Duration(1<<62), time.Duration(0)
	var sum time.Duration
	const n = 2000
	for range n {
		d := reconnectDelay()
		lo, hi, sum = min(lo, d), max(hi, d), sum+d
	}
	if lo < ReconnectEvery/2 || hi > ReconnectEvery*3/2 {
		t.Errorf("delays within %v..%v; want them within ReconnectEvery ± 50%%", lo, hi)
	}
	// 2,000 uniform draws over 750-1,250 ms: the extremes land within 50 ms
	// of the bounds, and the mean within 50 ms of 1 s, all but surely.
	if hi-lo < ReconnectEvery*4/10 {
		t.Errorf("delays within %v..%v: not spread", lo, hi)
	}
	if mean := sum / n; mean < ReconnectEvery*95/100 || mean > ReconnectEvery*105/100 {
		t.Errorf("mean delay %v, want about %v", mean, ReconnectEvery)
	}
}
