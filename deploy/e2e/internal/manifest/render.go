// Package manifest renders the deploy/ kustomizations and checks the result
// statically: strict decoding with the Kubernetes API types, selectors,
// frontend targets, probes, Pod Security and the project's own conventions
// (Downward API, hardening, drain timing). The same checks run before any
// cluster exists, so a broken manifest fails in milliseconds with a message
// that names the object and the field.
package manifest

import (
	"fmt"

	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
)

// Render builds the kustomization in dir with the kustomize API, the engine
// that `kubectl apply -k` embeds, and returns the multi-document YAML.
func Render(dir string) ([]byte, error) {
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	m, err := k.Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		return nil, fmt.Errorf("kustomize %s: %w", dir, err)
	}
	out, err := m.AsYaml()
	if err != nil {
		return nil, fmt.Errorf("kustomize %s: encode: %w", dir, err)
	}
	return out, nil
}
