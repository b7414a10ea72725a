package main

import (
	"context"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/knowingnode/knowingnode/harness/loopbackpods"
	"github.com/knowingnode/knowingnode/internal/load/engine"
	"github.com/knowingnode/knowingnode/internal/load/report"
)

func ptr[T any](v T) *T { return &v }

// With a kubernetes:/// target the load follows the Service's EndpointSlices
// (here a fake API server's): a pod added mid-run appears not ready, turns
// Ready, and is called; another starts terminating. The report marks each
// change, and the new pod's Ready to first call is within one refresh
// period of the truth.
func TestReportKubernetesLifecycle(t *testing.T) {
	const refresh = time.Second
	const slack = 750 * time.Millisecond
	ips, port := loopbackpods.Start(t, 3, 91, "be")
	ep := func(i int, ready, serving, terminating bool) discoveryv1.Endpoint {
		return discoveryv1.Endpoint{Addresses: []string{ips[i]},
			Conditions: discoveryv1.EndpointConditions{Ready: &ready, Serving: &serving, Terminating: &terminating},
			NodeName:   ptr([]string{"node-a", "node-b"}[i%2]), Zone: ptr("zone-1"),
			TargetRef: &corev1.ObjectReference{Kind: "Pod", Name: []string{"be-0", "be-1", "be-2"}[i]}}
	}
	slice := func(eps ...discoveryv1.Endpoint) *discoveryv1.EndpointSlice {
		return &discoveryv1.EndpointSlice{
			ObjectMeta:  metav1.ObjectMeta{Name: "web-abc", Namespace: "ns", Labels: map[string]string{discoveryv1.LabelServiceName: "web"}},
			AddressType: discoveryv1.AddressTypeIPv4,
			Ports:       []discoveryv1.EndpointPort{{Name: ptr("grpc"), Port: ptr(int32(port))}},
			Endpoints:   eps,
		}
	}
	// The fake clientset answers no streaming list (client-go's
	// WatchListClient default): the informer lists and watches instead.
	t.Setenv("KUBE_FEATURE_WatchListClient", "false")
	client := fake.NewClientset(slice(ep(0, true, true, false), ep(1, true, true, false)))
	file := filepath.Join(t.TempDir(), "run.html")
	args := []string{"--target", "kubernetes:///web.ns:grpc", "--balancing", "round_robin", "--refresh", refresh.String(),
		"--rate", "100", "--duration", "5s", "--window", "500ms", "--report", file, "--kubeconfig", ""}
	o, err := parseFlags(args)
	if err != nil {
		t.Fatal(err)
	}
	o.obs.client = client
	ob, err := newObserver(t.Context(), o)
	if err != nil {
		t.Fatal(err)
	}
	call, closeCall, err := newCaller(o, ob)
	if err != nil {
		t.Fatal(err)
	}
	defer closeCall()

	update := func(eps ...discoveryv1.Endpoint) time.Time {
		if _, err := client.DiscoveryV1().EndpointSlices("ns").Update(context.Background(), slice(eps...), metav1.UpdateOptions{}); err != nil {
			t.Error(err)
		}
		return time.Now()
	}
	windows := make(chan struct{}, 100)
	var truth time.Time
	steps := make(chan struct{})
	go func() {
		defer close(steps)
		<-windows
		<-windows
		update(ep(0, true, true, false), ep(1, true, true, false), ep(2, false, false, false))
		time.Sleep(time.Second)
		truth = update(ep(0, true, true, false), ep(1, true, true, false), ep(2, true, true, false))
		time.Sleep(time.Second)
		update(ep(0, true, true, false), ep(1, false, true, true), ep(2, true, true, false))
	}()
	sum, err := engine.Run(t.Context(), o.engine, ob.wrap(call), func(w *engine.Stats) {
		ob.window(w)
		windows <- struct{}{}
	})
	<-steps
	if err != nil {
		t.Fatal(err)
	}
	closeCall()
	if err := ob.close(args, sum); err != nil {
		t.Fatal(err)
	}
	d, err := report.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	pods := map[string]report.Pod{}
	for _, p := range d.Pods {
		pods[p.Name] = p
	}
	kinds := func(p report.Pod) []string {
		var k []string
		for _, m := range p.Marks {
			k = append(k, m.Kind)
		}
		return k
	}
	p := pods["be-2"]
	if !p.New || p.Ready == nil || p.ReadyToFirstCall == nil || p.Node != "node-a" || p.Zone != "zone-1" {
		t.Fatalf("be-2: %+v; want new on node-a in zone-1, Ready and called", p)
	}
	for _, k := range []string{report.Appeared, report.NotServing, report.Ready, report.Serving, report.FirstCall} {
		if !slices.Contains(kinds(p), k) {
			t.Errorf("be-2 marks %v lack %s", kinds(p), k)
		}
	}
	abs := func(s float64) time.Time { return d.Start.Add(time.Duration(s * float64(time.Second))) }
	seen := abs(*p.Ready).Sub(truth)
	want := abs(*p.FirstCall).Sub(truth)
	got := time.Duration(*p.ReadyToFirstCall * float64(time.Second))
	t.Logf("be-2 Ready in the API at +0, seen by the load %v later; first call %v after Ready; the report says %v", seen, want, got)
	if seen < -10*time.Millisecond || seen > refresh+slack {
		t.Errorf("the load saw be-2 Ready %v after the API had it; want within %v (+%v slack)", seen, refresh, slack)
	}
	if diff := want - got; diff < -10*time.Millisecond || diff > refresh+slack {
		t.Errorf("Ready to first call %v in the report, %v in truth", got, want)
	}
	if k := kinds(pods["be-1"]); !slices.Contains(k, report.Terminating) || !slices.Contains(k, report.NotReady) || pods["be-1"].Terminating == nil {
		t.Errorf("be-1 marks %v; want not-ready and terminating", k)
	}
	if d.Discovery != "kubernetes" || len(d.NeverCalled) != 0 {
		t.Errorf("discovery %q, never called %v; want kubernetes and none", d.Discovery, d.NeverCalled)
	}
}

// A load pinned to one pod (as through a ClusterIP) with --lifecycle-from
// the Service's EndpointSlices: the pod added mid-run is Ready and never
// called, and the report says so.
func TestReportLifecycleFromPinned(t *testing.T) {
	ips, port := loopbackpods.Start(t, 2, 95, "be")
	ready := true
	ep := func(i int) discoveryv1.Endpoint {
		return discoveryv1.Endpoint{Addresses: []string{ips[i]}, Conditions: discoveryv1.EndpointConditions{Ready: &ready},
			TargetRef: &corev1.ObjectReference{Kind: "Pod", Name: []string{"be-0", "be-1"}[i]}}
	}
	slice := func(eps ...discoveryv1.Endpoint) *discoveryv1.EndpointSlice {
		return &discoveryv1.EndpointSlice{
			ObjectMeta:  metav1.ObjectMeta{Name: "web-abc", Namespace: "ns", Labels: map[string]string{discoveryv1.LabelServiceName: "web"}},
			AddressType: discoveryv1.AddressTypeIPv4,
			Ports:       []discoveryv1.EndpointPort{{Name: ptr("grpc"), Port: ptr(int32(port))}},
			Endpoints:   eps,
		}
	}
	t.Setenv("KUBE_FEATURE_WatchListClient", "false")
	client := fake.NewClientset(slice(ep(0)))
	file := filepath.Join(t.TempDir(), "run.html")
	args := []string{"--target", "static:///" + ips[0] + ":" + strconv.Itoa(int(port)), "--lifecycle-from", "kubernetes:///web.ns:grpc",
		"--rate", "50", "--duration", "3s", "--window", "500ms", "--report", file, "--kubeconfig", ""}
	o, err := parseFlags(args)
	if err != nil {
		t.Fatal(err)
	}
	o.obs.client = client
	ob, err := newObserver(t.Context(), o)
	if err != nil {
		t.Fatal(err)
	}
	call, closeCall, err := newCaller(o, ob)
	if err != nil {
		t.Fatal(err)
	}
	defer closeCall()
	go func() {
		time.Sleep(time.Second)
		if _, err := client.DiscoveryV1().EndpointSlices("ns").Update(context.Background(), slice(ep(0), ep(1)), metav1.UpdateOptions{}); err != nil {
			t.Error(err)
		}
	}()
	sum, err := engine.Run(t.Context(), o.engine, ob.wrap(call), ob.window)
	if err != nil {
		t.Fatal(err)
	}
	if err := ob.close(args, sum); err != nil {
		t.Fatal(err)
	}
	d, err := report.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if len(d.NeverCalled) != 1 || d.NeverCalled[0] != "be-1" {
		t.Errorf("never called %v; want [be-1] (pods %+v)", d.NeverCalled, d.Pods)
	}
	for _, p := range d.Pods {
		if p.Name == "be-0" && (p.Ready == nil || p.FirstCall == nil || p.Addr == "") {
			t.Errorf("be-0: %+v; want Ready, called, at its address", p)
		}
	}
}
