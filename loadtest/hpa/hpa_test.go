package hpa

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/knowingnode/knowingnode/harness/poll"
)

func ptr[T any](v T) *T { return &v }

func hpaObj(rv string, current, desired, util int32) *autoscalingv2.HorizontalPodAutoscaler {
	return &autoscalingv2.HorizontalPodAutoscaler{
		ObjectMeta: metav1.ObjectMeta{Name: "backend", Namespace: "ns", ResourceVersion: rv},
		Spec: autoscalingv2.HorizontalPodAutoscalerSpec{Metrics: []autoscalingv2.MetricSpec{{Type: autoscalingv2.ResourceMetricSourceType,
			Resource: &autoscalingv2.ResourceMetricSource{Name: corev1.ResourceCPU, Target: autoscalingv2.MetricTarget{AverageUtilization: ptr(int32(50))}}}}},
		Status: autoscalingv2.HorizontalPodAutoscalerStatus{CurrentReplicas: current, DesiredReplicas: desired,
			CurrentMetrics: []autoscalingv2.MetricStatus{{Type: autoscalingv2.ResourceMetricSourceType,
				Resource: &autoscalingv2.ResourceMetricStatus{Name: corev1.ResourceCPU, Current: autoscalingv2.MetricValueStatus{AverageUtilization: ptr(util)}}}}},
	}
}

// Each status change arrives as a decision, with the metric it acted on;
// an unchanged status does not.
func TestFollowReportsDecisions(t *testing.T) {
	client := fake.NewClientset(hpaObj("1", 2, 2, 20))
	var mu sync.Mutex
	var got []Decision
	f, err := Follow(t.Context(), client, "ns", []string{"backend"}, nil, func(d Decision) {
		mu.Lock()
		defer mu.Unlock()
		got = append(got, d)
	})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	decisions := func() []Decision {
		mu.Lock()
		defer mu.Unlock()
		return append([]Decision(nil), got...)
	}
	// The fake's watch starts asynchronously: update until it is seen.
	api := client.AutoscalingV2().HorizontalPodAutoscalers("ns")
	update := func(h *autoscalingv2.HorizontalPodAutoscaler) {
		if _, err := api.UpdateStatus(t.Context(), h, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	poll.T(t, 10*time.Second, "the scale-up decision", func(context.Context) error {
		update(hpaObj("2", 2, 4, 180))
		if n := len(decisions()); n < 2 {
			return fmt.Errorf("%d decisions", n)
		}
		return nil
	})
	update(hpaObj("3", 2, 4, 180)) // no change
	update(hpaObj("4", 4, 4, 90))
	poll.T(t, 10*time.Second, "the pods arriving", func(context.Context) error {
		if n := len(decisions()); n < 3 {
			return fmt.Errorf("%d decisions", n)
		}
		return nil
	})
	d := decisions()
	if len(d) != 3 || d[0].Desired != 2 || d[1].Current != 2 || d[1].Desired != 4 || d[2].Current != 4 {
		t.Fatalf("decisions %+v; want 2→2, 2→4, 4→4", d)
	}
	if !strings.Contains(d[1].Metric, "cpu 180% (target 50%)") || d[1].HPA != "backend" {
		t.Errorf("decision %+v; want the HPA's name and cpu 180%% (target 50%%)", d[1])
	}
}

func TestFollowMissingHPA(t *testing.T) {
	_, err := Follow(t.Context(), fake.NewClientset(), "ns", []string{"nope"}, nil, func(Decision) {})
	if err == nil || !strings.Contains(err.Error(), "ns/nope") {
		t.Errorf("err %v; want one naming ns/nope", err)
	}
}
