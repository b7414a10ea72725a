package manifest

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/kubernetes/scheme"
	sigyaml "sigs.k8s.io/yaml"
)

// Set is a rendered overlay, decoded into typed objects.
type Set struct {
	Namespaces   []*corev1.Namespace
	Deployments  []*appsv1.Deployment
	StatefulSets []*appsv1.StatefulSet
	DaemonSets   []*appsv1.DaemonSet
	Services     []*corev1.Service
	HPAs         []*autoscalingv2.HorizontalPodAutoscaler
	PDBs         []*policyv1.PodDisruptionBudget
}

// strict refuses unknown and duplicate fields, as `kubectl apply
// --validate=strict` and the API server's field validation do.
var strict = serializer.NewCodecFactory(scheme.Scheme, serializer.EnableStrict).UniversalDeserializer()

// Decode splits multi-document YAML and decodes every document strictly into
// its Kubernetes API type. Every error names the object it is about.
func Decode(data []byte) (*Set, error) {
	var (
		set  Set
		errs []error
	)
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	for i := 0; ; i++ {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("document %d: %w", i, err)
		}
		if len(bytes.TrimSpace(doc)) == 0 {
			continue
		}
		id := identify(doc, i)
		obj, _, err := strict.Decode(doc, nil, nil)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", id, err))
			continue
		}
		if err := set.add(obj); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", id, err))
		}
	}
	return &set, errors.Join(errs...)
}

func (s *Set) add(obj runtime.Object) error {
	switch o := obj.(type) {
	case *corev1.Namespace:
		s.Namespaces = append(s.Namespaces, o)
	case *appsv1.Deployment:
		s.Deployments = append(s.Deployments, o)
	case *appsv1.StatefulSet:
		s.StatefulSets = append(s.StatefulSets, o)
	case *appsv1.DaemonSet:
		s.DaemonSets = append(s.DaemonSets, o)
	case *corev1.Service:
		s.Services = append(s.Services, o)
	case *autoscalingv2.HorizontalPodAutoscaler:
		s.HPAs = append(s.HPAs, o)
	case *policyv1.PodDisruptionBudget:
		s.PDBs = append(s.PDBs, o)
	default:
		// Only kinds the checks understand are allowed: anything else would
		// go unchecked.
		return fmt.Errorf("kind %T is not checked by deploy/e2e/internal/manifest", obj)
	}
	return nil
}

// identify names a document before it is decoded, from a lenient parse, so
// that a strict decoding error can say which object failed.
func identify(doc []byte, i int) string {
	var meta struct {
		Kind     string `json:"kind"`
		Metadata struct {
			Name      string `json:"name"`
			Namespace string `json:"namespace"`
		} `json:"metadata"`
	}
	if err := sigyaml.Unmarshal(doc, &meta); err != nil || meta.Kind == "" {
		return fmt.Sprintf("document %d", i)
	}
	return objectID(meta.Kind, meta.Metadata.Namespace, meta.Metadata.Name)
}

func objectID(kind, ns, name string) string {
	if ns == "" {
		return kind + " " + name
	}
	return kind + " " + ns + "/" + name
}

// Sort orders every kind's objects by namespace and name, so that two
// renderings that differ only in document order compare equal.
func (s *Set) Sort() {
	key := func(ns, name string) string { return ns + "/" + name }
	sortBy(s.Namespaces, func(o *corev1.Namespace) string { return key(o.Namespace, o.Name) })
	sortBy(s.Deployments, func(o *appsv1.Deployment) string { return key(o.Namespace, o.Name) })
	sortBy(s.StatefulSets, func(o *appsv1.StatefulSet) string { return key(o.Namespace, o.Name) })
	sortBy(s.DaemonSets, func(o *appsv1.DaemonSet) string { return key(o.Namespace, o.Name) })
	sortBy(s.Services, func(o *corev1.Service) string { return key(o.Namespace, o.Name) })
	sortBy(s.HPAs, func(o *autoscalingv2.HorizontalPodAutoscaler) string { return key(o.Namespace, o.Name) })
	sortBy(s.PDBs, func(o *policyv1.PodDisruptionBudget) string { return key(o.Namespace, o.Name) })
}

func sortBy[T any](xs []T, key func(T) string) {
	slices.SortFunc(xs, func(a, b T) int { return strings.Compare(key(a), key(b)) })
}
