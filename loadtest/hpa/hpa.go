// Package hpa follows HorizontalPodAutoscalers' status while a load runs and
// reports each decision: a change of desired or current replicas, or of the
// metric it acted on (its text), with that metric. It needs
// only get and watch on the HPAs (deploy/components/loadtest/rbac.yaml).
package hpa

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	autoscalingv2 "k8s.io/api/autoscaling/v2"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	watchtools "k8s.io/client-go/tools/watch"
)

// Decision is an HPA's status at a change.
type Decision struct {
	At               time.Time // when the load saw it
	HPA              string
	Current, Desired int32
	Metric           string // e.g. "cpu 87% (target 50%)"
}

// Follower watches some HPAs until Close.
type Follower struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// Follow starts watching each named HPA in namespace. It first gets each
// one, so a missing HPA or a missing permission fails here, by name; on
// receives the first status and every decision after, from one goroutine
// per HPA.
func Follow(ctx context.Context, client kubernetes.Interface, namespace string, names []string, log *slog.Logger, on func(Decision)) (*Follower, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	api := client.AutoscalingV2().HorizontalPodAutoscalers(namespace)
	type start struct {
		name string
		obj  *autoscalingv2.HorizontalPodAutoscaler
	}
	var starts []start
	for _, n := range names {
		h, err := api.Get(ctx, n, metav1.GetOptions{})
		if err != nil {
			return nil, fmt.Errorf("--hpa %s/%s: %w", namespace, n, err)
		}
		starts = append(starts, start{n, h})
	}
	wctx, cancel := context.WithCancel(context.Background())
	f := &Follower{cancel: cancel}
	for _, s := range starts {
		f.wg.Go(func() {
			var last *Decision
			emit := func(h *autoscalingv2.HorizontalPodAutoscaler) {
				d := decision(h)
				if last != nil && last.Current == d.Current && last.Desired == d.Desired && last.Metric == d.Metric {
					return
				}
				last = &d
				on(d)
			}
			emit(s.obj)
			follow(wctx, api, s.name, s.obj.ResourceVersion, log, emit)
		})
	}
	return f, nil
}

type hpaAPI interface {
	Watch(ctx context.Context, o metav1.ListOptions) (watch.Interface, error)
}

// follow watches one HPA from resourceVersion, resuming after a broken watch
// (RetryWatcher: watch only, no list), until ctx ends.
func follow(ctx context.Context, api hpaAPI, name, rv string, log *slog.Logger, emit func(*autoscalingv2.HorizontalPodAutoscaler)) {
	sel := fields.OneTermEqualSelector("metadata.name", name).String()
	lw := &cache.ListWatch{WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
		o.FieldSelector = sel
		return api.Watch(ctx, o)
	}}
	for ctx.Err() == nil {
		rw, err := watchtools.NewRetryWatcherWithContext(ctx, rv, lw)
		if err != nil {
			log.Warn("HPA watch", "hpa", name, "err", err)
			return
		}
		for ev := range rw.ResultChan() {
			if h, ok := ev.Object.(*autoscalingv2.HorizontalPodAutoscaler); ok && (ev.Type == watch.Added || ev.Type == watch.Modified) {
				rv = h.ResourceVersion
				emit(h)
			}
		}
		rw.Stop()
		select {
		case <-rw.Done():
		case <-ctx.Done():
		}
		if ctx.Err() == nil {
			// The resource version expired: the watch cannot resume
			// without a list, which this Role does not grant.
			log.Warn("HPA watch ended; following stops", "hpa", name)
			return
		}
	}
}

// Close stops following and waits for every watch to end.
func (f *Follower) Close() {
	f.cancel()
	f.wg.Wait()
}

func decision(h *autoscalingv2.HorizontalPodAutoscaler) Decision {
	return Decision{At: time.Now(), HPA: h.Name, Current: h.Status.CurrentReplicas, Desired: h.Status.DesiredReplicas, Metric: metric(h)}
}

// metric says what the HPA measured against its targets, e.g.
// "cpu 87% (target 50%)".
func metric(h *autoscalingv2.HorizontalPodAutoscaler) string {
	targets := map[string]string{}
	for _, m := range h.Spec.Metrics {
		if m.Resource != nil {
			targets[string(m.Resource.Name)] = target(m.Resource.Target)
		}
	}
	var parts []string
	for _, m := range h.Status.CurrentMetrics {
		switch {
		case m.Resource != nil:
			s := string(m.Resource.Name) + " " + current(m.Resource.Current)
			if t := targets[string(m.Resource.Name)]; t != "" {
				s += " (target " + t + ")"
			}
			parts = append(parts, s)
		case m.Pods != nil:
			parts = append(parts, m.Pods.Metric.Name+" "+current(m.Pods.Current))
		case m.Object != nil:
			parts = append(parts, m.Object.Metric.Name+" "+current(m.Object.Current))
		case m.External != nil:
			parts = append(parts, m.External.Metric.Name+" "+current(m.External.Current))
		case m.ContainerResource != nil:
			parts = append(parts, string(m.ContainerResource.Name)+" "+current(m.ContainerResource.Current))
		}
	}
	return strings.Join(parts, ", ")
}

func current(v autoscalingv2.MetricValueStatus) string {
	switch {
	case v.AverageUtilization != nil:
		return fmt.Sprintf("%d%%", *v.AverageUtilization)
	case v.AverageValue != nil:
		return v.AverageValue.String()
	case v.Value != nil:
		return v.Value.String()
	}
	return "?"
}

func target(t autoscalingv2.MetricTarget) string {
	switch {
	case t.AverageUtilization != nil:
		return fmt.Sprintf("%d%%", *t.AverageUtilization)
	case t.AverageValue != nil:
		return t.AverageValue.String()
	case t.Value != nil:
		return t.Value.String()
	}
	return ""
}
