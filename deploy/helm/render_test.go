package helm

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	sigyaml "sigs.k8s.io/yaml"
)

// helmBin is the pinned helm, built once by TestMain.
var helmBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "knowingnode-helm-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	helmBin = filepath.Join(dir, "helm")
	// The module root is the repository's: -modfile only swaps its go.mod.
	cmd := exec.Command("go", "build", "-modfile=tools/helm.mod", "-o", helmBin, "helm.sh/helm/v3/cmd/helm")
	cmd.Dir = "../.."
	cmd.Env = append(os.Environ(), "GOWORK=off")
	if out, err := cmd.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build the pinned helm (tools/helm.mod): %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// helm runs the pinned helm with an empty home, so no user repository or
// plugin can change what it renders.
func helm(t *testing.T, args ...string) ([]byte, error) {
	t.Helper()
	home := t.TempDir()
	cmd := exec.Command(helmBin, args...)
	cmd.Env = []string{
		"HOME=" + home,
		"HELM_CACHE_HOME=" + filepath.Join(home, "cache"),
		"HELM_CONFIG_HOME=" + filepath.Join(home, "config"),
		"HELM_DATA_HOME=" + filepath.Join(home, "data"),
		"PATH=" + os.Getenv("PATH"),
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return out, fmt.Errorf("helm %s: %w\n%s", strings.Join(args, " "), err, stderr.Bytes())
	}
	return out, nil
}

// renderChart is `helm template` of chart with a values file, without the
// test hook (compared separately).
func renderChart(t *testing.T, chart, values string, extra ...string) []byte {
	t.Helper()
	args := append([]string{"template", "knowingnode", chart, "--skip-tests", "-f", values}, extra...)
	out, err := helm(t, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// renderKustomize builds a kustomization with the kustomize API, the engine
// `kubectl apply -k` embeds.
func renderKustomize(t *testing.T, dir string) []byte {
	t.Helper()
	m, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		t.Fatalf("kustomize %s: %v", dir, err)
	}
	out, err := m.AsYaml()
	if err != nil {
		t.Fatalf("kustomize %s: %v", dir, err)
	}
	return out
}

// object is one rendered document: its identity and its content as the
// Kubernetes API types see it.
type object struct {
	id  string // "Kind namespace/name"
	obj map[string]any
	typ runtime.Object // nil for kinds outside client-go's scheme (PodMonitor)
}

// strict refuses unknown and duplicate fields, as the API server's strict
// field validation does.
var strict = serializer.NewCodecFactory(scheme.Scheme, serializer.EnableStrict).UniversalDeserializer()

// decode splits multi-document YAML. Every document of a kind the scheme
// knows is decoded strictly into its API type and back, so that two
// spellings of one value (cpu: 1 and cpu: "1", key order, explicit empty
// fields) compare equal and an invalid field is an error naming the object.
func decode(data []byte) (map[string]object, error) {
	objs := map[string]object{}
	var errs []error
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	for i := 0; ; i++ {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("document %d: %w", i, err)
		}
		var raw map[string]any
		if err := sigyaml.Unmarshal(doc, &raw); err != nil {
			return nil, fmt.Errorf("document %d: %w", i, err)
		}
		if len(raw) == 0 {
			continue
		}
		meta, _ := raw["metadata"].(map[string]any)
		id := fmt.Sprintf("%v %v/%v", raw["kind"], meta["namespace"], meta["name"])
		o := object{id: id, obj: raw}
		typ, _, err := strict.Decode(doc, nil, nil)
		switch {
		case runtime.IsNotRegisteredError(err):
		case err != nil:
			errs = append(errs, fmt.Errorf("%s: %w", id, err))
			continue
		default:
			u, err := runtime.DefaultUnstructuredConverter.ToUnstructured(typ)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", id, err))
				continue
			}
			delete(u, "status")
			if m, ok := u["metadata"].(map[string]any); ok {
				delete(m, "creationTimestamp")
			}
			o.obj, o.typ = u, typ
		}
		if _, dup := objs[id]; dup {
			errs = append(errs, fmt.Errorf("%s: rendered twice", id))
		}
		objs[id] = o
	}
	return objs, errors.Join(errs...)
}

func ids(objs map[string]object) []string {
	out := make([]string, 0, len(objs))
	for id := range objs {
		out = append(out, id)
	}
	sort.Strings(out)
	return out
}
