package e2e

import (
	"context"
	"fmt"
	"maps"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	knowingnodev1 "github.com/knowingnode/knowingnode/gen/knowingnode/v1"
	"github.com/knowingnode/knowingnode/harness/poll"
	"github.com/knowingnode/knowingnode/harness/proc"
)

// TestZone checks the whole path of a pod's zone on the real control plane:
// the fake nodes carry topology.kubernetes.io/zone and region labels (the
// cluster package gives them), a pod bound to each node by the scheduler gets
// them copied onto its own labels by the PodTopologyLabels admission (its gate
// PodTopologyLabelsAdmission is beta and on by default in v1.36: no flag is
// passed here), and the real backend, given those labels as the kubelet
// writes the Downward API labels file, reports them as zone and region; a
// real frontend's fan-out over those backends counts them by zone.
func TestZone(t *testing.T) {
	line := report(t, "zone")
	ctx := t.Context()
	const ns = "default"
	nodeZone := map[string]string{}
	nodes, err := cl.Client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes.Items {
		nodeZone[n.Name] = n.Labels[corev1.LabelTopologyZone]
	}
	zero := int64(0)
	var names []string
	for i := range 3 {
		node := fmt.Sprintf("node-%d", i)
		if nodeZone[node] == "" {
			t.Fatalf("node %s has no %s label (nodes: %v)", node, corev1.LabelTopologyZone, nodeZone)
		}
		name := fmt.Sprintf("zone-probe-%d", i)
		pod := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: map[string]string{"app": "zone-probe"}},
			Spec: corev1.PodSpec{
				// Through the scheduler, so the labels arrive with the
				// binding, as for every ordinary pod.
				NodeSelector:                  map[string]string{corev1.LabelHostname: node},
				Containers:                    []corev1.Container{{Name: "c", Image: "none"}},
				TerminationGracePeriodSeconds: &zero,
			},
		}
		if _, err := cl.Client.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		names = append(names, name)
		t.Cleanup(func() {
			_ = cl.Client.CoreV1().Pods(ns).Delete(context.Background(), name, metav1.DeleteOptions{GracePeriodSeconds: &zero})
		})
	}
	pods := map[string]*corev1.Pod{}
	poll.T(t, 60*time.Second, "the zone probes to be bound", func(ctx context.Context) error {
		for _, name := range names {
			p, err := cl.Client.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return err
			}
			if p.Spec.NodeName == "" {
				return fmt.Errorf("pod %s not bound yet", name)
			}
			pods[name] = p
		}
		return nil
	})
	wantByZone := map[string]int32{}
	for _, p := range pods {
		want := nodeZone[p.Spec.NodeName]
		if got := p.Labels[corev1.LabelTopologyZone]; got != want {
			t.Fatalf("pod %s on node %s: label %s=%q, want the node's %q (is the PodTopologyLabels admission on?); labels %v",
				p.Name, p.Spec.NodeName, corev1.LabelTopologyZone, got, want, p.Labels)
		}
		wantByZone[want]++
	}
	if len(wantByZone) < 2 {
		t.Fatalf("the probes landed in %d zone(s) %v; the nodes' zones should give 2", len(wantByZone), wantByZone)
	}

	// The backends as those pods: their labels written as the kubelet
	// writes the Downward API labels file.
	bin := buildBinaries(t)
	var addrs []string
	for _, p := range pods {
		dir := t.TempDir()
		writeDownward(t, &corev1.PodTemplateSpec{ObjectMeta: p.ObjectMeta}, dir)
		b := proc.Start(t, filepath.Join(bin, "backend"),
			[]string{"POD_NAME=" + p.Name, "POD_NAMESPACE=" + ns, "NODE_NAME=" + p.Spec.NodeName, "DRAIN_DELAY=0s"},
			"--grpc-addr", "127.0.0.1:0", "--admin-addr", "", "--downward-dir", dir)
		if b.Addrs["grpc"] == "" {
			t.Fatalf("backend %s logged no grpc address: %v", p.Name, b.Addrs)
		}
		addrs = append(addrs, b.Addrs["grpc"])
		t.Cleanup(func() { b.Stop(t) })
	}
	fe := proc.Start(t, filepath.Join(bin, "frontend"),
		[]string{"POD_NAME=frontend-0", "POD_NAMESPACE=" + ns, "DRAIN_DELAY=0s"},
		"--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0", "--admin-addr", "", "--downward-dir", "",
		"--target", "zones=static:///"+strings.Join(addrs, ","))
	t.Cleanup(func() { fe.Stop(t) })
	conn, err := grpc.NewClient(fe.Addrs["grpc"], grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	resp, err := knowingnodev1.NewFanOutServiceClient(conn).FanOut(fctx, &knowingnodev1.FanOutRequest{Target: "zones"})
	if err != nil {
		t.Fatalf("FanOut: %v", err)
	}
	for _, r := range resp.GetResults() {
		id := r.GetIdentity()
		p := pods[id.GetPodName()]
		if r.GetCode() != "OK" || p == nil {
			t.Fatalf("FanOut: %s answered %s %s as pod %q", r.GetAddress(), r.GetCode(), r.GetMessage(), id.GetPodName())
		}
		if id.GetZone() != p.Labels[corev1.LabelTopologyZone] || id.GetRegion() != p.Labels[corev1.LabelTopologyRegion] ||
			id.GetSources()["zone"] != knowingnodev1.Source_SOURCE_DOWNWARD_API || id.GetSources()["region"] != knowingnodev1.Source_SOURCE_DOWNWARD_API {
			t.Errorf("backend %s: zone %q region %q (sources %v), want %q %q from the Downward API",
				id.GetPodName(), id.GetZone(), id.GetRegion(), id.GetSources(), p.Labels[corev1.LabelTopologyZone], p.Labels[corev1.LabelTopologyRegion])
		}
	}
	if got := resp.GetSummary().GetByZone(); !maps.Equal(got, wantByZone) {
		t.Errorf("fan-out summary by zone %v, want %v", got, wantByZone)
	}
	*line = fmt.Sprintf("%d pods bound by the scheduler got their node's zone/region labels (PodTopologyLabels admission, default gates); backends report them as zone/region; fan-out by zone %v",
		len(pods), resp.GetSummary().GetByZone())
}
