package helm

import (
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/util/diff"
)

// helmLabels are the labels the chart adds to every object's metadata (never
// to selectors or pod templates) that kustomize has no counterpart of.
var helmLabels = []string{
	"app.kubernetes.io/instance",
	"app.kubernetes.io/managed-by",
	"app.kubernetes.io/version",
	"helm.sh/chart",
}

// compare holds a chart rendering to a kustomize rendering: the same objects
// (kind, namespace, name) and, in each, every field equal: images, ports,
// probes, env, security contexts, resources, selectors, Service specs, HPA
// and PDB specs alike. The only difference allowed is Helm's own metadata
// labels. It returns one line per difference.
func compare(chart, kust map[string]object) []string {
	var diffs []string
	for _, id := range ids(kust) {
		if _, ok := chart[id]; !ok {
			diffs = append(diffs, fmt.Sprintf("%s: in the kustomize overlay, not in the chart", id))
		}
	}
	for _, id := range ids(chart) {
		c := chart[id]
		k, inKust := kust[id]
		if !inKust {
			diffs = append(diffs, fmt.Sprintf("%s: in the chart, not in the kustomize overlay", id))
			continue
		}
		got := withoutHelmLabels(c.obj)
		if !reflect.DeepEqual(got, k.obj) {
			diffs = append(diffs, fmt.Sprintf("%s differs (- chart, + kustomize):\n%s", id, diff.Diff(got, k.obj)))
		}
	}
	return diffs
}

// withoutHelmLabels returns a copy of obj without Helm's metadata labels
// (and without the labels map if nothing else is in it).
func withoutHelmLabels(obj map[string]any) map[string]any {
	out := maps.Clone(obj)
	meta, ok := obj["metadata"].(map[string]any)
	if !ok {
		return out
	}
	meta = maps.Clone(meta)
	out["metadata"] = meta
	labels, ok := meta["labels"].(map[string]any)
	if !ok {
		return out
	}
	labels = maps.Clone(labels)
	for _, l := range helmLabels {
		delete(labels, l)
	}
	if len(labels) == 0 {
		delete(meta, "labels")
	} else {
		meta["labels"] = labels
	}
	return out
}

func summarize(diffs []string) string {
	slices.Sort(diffs)
	return strings.Join(diffs, "\n")
}
