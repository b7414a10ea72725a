package identity

import (
	"os"
	"path/filepath"
	"testing"

	"google.golang.org/protobuf/proto"
	"k8s.io/apimachinery/pkg/api/validate/content"

	knowingnodev1 "github.com/knowingnode/knowingnode/gen/knowingnode/v1"
)

// FuzzLoad loads an identity from any environment values and any Downward
// API volume files: it never panics, always encodes (the backend serves it
// encoded once, so a value proto refuses would stop the process), reports a
// source for every field, keeps what the volume files say exactly when they
// parse, takes the zone and region from them only as valid label values, and
// reveals no annotation the default filter withholds.
func FuzzLoad(f *testing.F) {
	f.Add("backend-0", "10.244.0.5", "10.244.0.5,fd00::5", "500", "134217728",
		"app=\"backend\"\nstatefulset.kubernetes.io/pod-name=\"backend-0\"\ntopology.kubernetes.io/zone=\"zone-a\"\n",
		"kubectl.kubernetes.io/last-applied-configuration=\"{\\\"a\\\":1}\"\nteam=\"search\"\n")
	f.Add("", "", " , ,", "-1", "1e3", "app=backend", `a="\q"`)
	f.Add("\xff", "\xc0\xaf", "\xff", "9223372036854775808", " 42 ", `a="\xff"`, `db-token="\xc0\xaf"`+"\n"+`x="y"`)
	f.Add("p", "", "", "", "", "=\"v\"", "k=\"v\"\nk=\"w\"")
	f.Add("p", "", "", "", "", "topology.kubernetes.io/zone=\"a b\"\ntopology.kubernetes.io/region=\"\xff\"", "")
	fields := []string{FieldPodName, FieldPodNamespace, FieldPodIP, FieldPodIPs, FieldPodUID, FieldNodeName,
		FieldNodeIP, FieldServiceAccount, FieldLabels, FieldAnnotations, FieldCPULimit, FieldMemoryLimit, FieldZone, FieldRegion}
	f.Fuzz(func(t *testing.T, pod, ip, ips, cpu, mem, labels, annotations string) {
		dir := t.TempDir()
		for name, content := range map[string]string{FileLabels: labels, FileAnnotations: annotations} {
			if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		env := map[string]string{EnvPodName: pod, EnvPodIP: ip, EnvPodIPs: ips, EnvCPULimit: cpu, EnvMemoryLimit: mem,
			EnvNodeName: pod, EnvPodNamespace: ip}
		id := Load(Options{Getenv: envOf(env), DownwardDir: dir, Machine: fakeMachine{host: "h"}})
		if _, err := proto.Marshal(&knowingnodev1.GetIdentityResponse{Identity: id}); err != nil {
			t.Fatalf("identity does not encode: %v", err)
		}
		for _, field := range fields {
			if _, ok := id.Sources[field]; !ok {
				t.Errorf("no source for %s", field)
			}
		}
		if id.CpuLimitMillicores < 0 || id.MemoryLimitBytes < 0 {
			t.Errorf("negative limits %d %d", id.CpuLimitMillicores, id.MemoryLimitBytes)
		}
		if id.PodIp != "" && id.Sources[FieldPodIPs] == knowingnodev1.Source_SOURCE_DOWNWARD_API && len(id.PodIps) == 0 {
			t.Errorf("pod IP %q from the Downward API, but no pod IPs", id.PodIp)
		}
		want, err := ParseKeyValues([]byte(labels))
		if got := id.Sources[FieldLabels] == knowingnodev1.Source_SOURCE_DOWNWARD_API; got != (err == nil) {
			t.Errorf("labels parse error %v, but source %v", err, id.Sources[FieldLabels])
		}
		if err == nil && len(want) != len(id.Labels) {
			t.Errorf("labels %q, file says %q", id.Labels, want)
		}
		for field, got := range map[string]string{LabelZone: id.Zone, LabelRegion: id.Region} {
			if got == "" {
				continue
			}
			if errs := content.IsLabelValue(got); len(errs) > 0 || got != id.Labels[field] {
				t.Errorf("%s = %q: not the label's value %q, or not a valid label value: %v", field, got, id.Labels[field], errs)
			}
		}
		var def AnnotationFilter
		def.Deny = DefaultDeny
		for k := range id.Annotations {
			if !def.Reveals(k) {
				t.Errorf("annotation %q revealed", k)
			}
		}
	})
}

func FuzzParseKeyValues(f *testing.F) {
	f.Add([]byte("a=\"b\"\nc=\"d=e\"\n"))
	f.Add([]byte("a=\"\\xff\"\n"))
	f.Add([]byte("="))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := ParseKeyValues(b)
		if err != nil {
			return
		}
		// What parses survives the kubelet's writing it again.
		again, err := ParseKeyValues([]byte(kubeletFormat(m)))
		if err != nil || !stringMapsEqual(again, m) {
			t.Errorf("%q parsed to %q, which written again parses to %q, %v", b, m, again, err)
		}
	})
}
