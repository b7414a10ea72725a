package manifest

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	sigyaml "sigs.k8s.io/yaml"
)

// podMonitor is the part of the Prometheus Operator's PodMonitor the check
// needs; its CRD is not among the Kubernetes API types.
type podMonitor struct {
	Kind     string
	Metadata struct{ Name, Namespace string }
	Spec     struct {
		NamespaceSelector struct{ MatchNames []string } `json:"namespaceSelector"`
		Selector          metav1.LabelSelector
		Endpoints         []struct{ Port, Path string } `json:"podMetricsEndpoints"`
	}
}

// The monitoring component, added to the overlay of every topology, must
// select real pods in the namespaces it names, on ports those pods declare;
// and every pod must carry the scrape annotations for annotation-based
// Prometheus, pointing at a port it declares.
func TestMonitoringComponent(t *testing.T) {
	abs, err := filepath.Abs(deployDir)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	rel, err := filepath.Rel(dir, abs) // kustomize takes no absolute roots
	if err != nil {
		t.Fatal(err)
	}
	kust := "resources:\n  - " + filepath.Join(rel, "overlays", "all") + "\ncomponents:\n  - " + filepath.Join(rel, "components", "monitoring") + "\n"
	if err := os.WriteFile(filepath.Join(dir, "kustomization.yaml"), []byte(kust), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := Render(dir)
	if err != nil {
		t.Fatal(err)
	}
	var monitors []podMonitor
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(out)))
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		var pm podMonitor
		if err := sigyaml.Unmarshal(doc, &pm); err != nil {
			t.Fatal(err)
		}
		if pm.Kind == "PodMonitor" {
			monitors = append(monitors, pm)
		}
	}
	if len(monitors) != 3 {
		t.Fatalf("%d PodMonitors, want 3 (backend, frontend, load)", len(monitors))
	}
	// The load's pods come from the loadtest component, not the overlays.
	monitors = slices.DeleteFunc(monitors, func(pm podMonitor) bool { return pm.Metadata.Name == "knowingnode-load" })
	if len(monitors) != 2 {
		t.Fatalf("PodMonitors for the tiers: %d, want 2 (backend, frontend)", len(monitors))
	}

	ws := load(t, filepath.Join(deployDir, "overlays", "all")).workloads()
	for _, pm := range monitors {
		namespaces := pm.Spec.NamespaceSelector.MatchNames
		if len(namespaces) == 0 {
			namespaces = []string{pm.Metadata.Namespace}
		}
		matched := 0
		for _, w := range ws {
			ok, err := selectorMatches(&pm.Spec.Selector, w.template.Labels)
			if err != nil {
				t.Fatalf("PodMonitor %s: selector: %v", pm.Metadata.Name, err)
			}
			if !ok || !slices.Contains(namespaces, w.namespace) {
				continue
			}
			matched++
			for _, ep := range pm.Spec.Endpoints {
				if !declaresPort(w, ep.Port) {
					t.Errorf("PodMonitor %s: port %q is not declared by %s", pm.Metadata.Name, ep.Port, w.id())
				}
			}
		}
		if matched == 0 {
			t.Errorf("PodMonitor %s selects no workload in %v", pm.Metadata.Name, namespaces)
		}
	}
	for _, w := range ws {
		a := w.template.Annotations
		if a["prometheus.io/scrape"] != "true" || a["prometheus.io/path"] != "/metrics" {
			t.Errorf("%s: pod template lacks the prometheus.io scrape annotations: %v", w.id(), a)
		}
		found := false
		for _, c := range w.template.Spec.Containers {
			for _, p := range c.Ports {
				found = found || a["prometheus.io/port"] == itoa(p.ContainerPort)
			}
		}
		if !found {
			t.Errorf("%s: prometheus.io/port %q is not a declared container port", w.id(), a["prometheus.io/port"])
		}
	}
}

func declaresPort(w workload, name string) bool {
	for _, c := range w.template.Spec.Containers {
		for _, p := range c.Ports {
			if p.Name == name {
				return true
			}
		}
	}
	return false
}

func itoa(n int32) string {
	b, _ := sigyaml.Marshal(n)
	return string(bytes.TrimSpace(b))
}
