package identity

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	knowingnodev1 "github.com/knowingnode/knowingnode/gen/knowingnode/v1"
)

// fakeMachine is the OS boundary the fallbacks read.
type fakeMachine struct {
	host    string
	hostErr error
	addrs   []net.Addr
	addrErr error
}

func (m fakeMachine) Hostname() (string, error)           { return m.host, m.hostErr }
func (m fakeMachine) InterfaceAddrs() ([]net.Addr, error) { return m.addrs, m.addrErr }

func ipnet(s string) *net.IPNet {
	ip, n, err := net.ParseCIDR(s)
	if err != nil {
		panic(err)
	}
	n.IP = ip
	return n
}

// logRecords captures what Load logs, one decoded JSON object per record.
type logRecords struct{ buf bytes.Buffer }

func (l *logRecords) logger() *slog.Logger {
	return slog.New(slog.NewJSONHandler(&l.buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func (l *logRecords) records(t *testing.T) []map[string]any {
	t.Helper()
	var out []map[string]any
	dec := json.NewDecoder(&l.buf)
	for dec.More() {
		var m map[string]any
		if err := dec.Decode(&m); err != nil {
			t.Fatalf("decode log: %v", err)
		}
		out = append(out, m)
	}
	return out
}

// warnings counts WARN records by the value of key (e.g. "field" or "env").
func warnings(recs []map[string]any, key string) map[string]int {
	n := map[string]int{}
	for _, r := range recs {
		if r["level"] == "WARN" {
			v, _ := r[key].(string)
			n[v]++
		}
	}
	return n
}

func envOf(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

const (
	downward = knowingnodev1.Source_SOURCE_DOWNWARD_API
	fallback = knowingnodev1.Source_SOURCE_FALLBACK
	absent   = knowingnodev1.Source_SOURCE_ABSENT
)

func TestLoadFromEnv(t *testing.T) {
	env := map[string]string{
		EnvPodName:        "backend-0",
		EnvPodNamespace:   "knowingnode",
		EnvPodIP:          "10.244.0.5",
		EnvPodIPs:         "10.244.0.5,fd00::5",
		EnvPodUID:         "0b7c6f6e-1",
		EnvNodeName:       "node-a",
		EnvNodeIP:         "192.168.1.10",
		EnvServiceAccount: "backend",
		EnvCPULimit:       "500",
		EnvMemoryLimit:    "134217728",
	}
	start := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	var logs logRecords
	id := Load(Options{
		Tier:      knowingnodev1.Tier_TIER_BACKEND,
		Getenv:    envOf(env),
		Machine:   fakeMachine{host: "os-host", addrs: []net.Addr{ipnet("172.16.0.9/24")}},
		StartTime: start,
		Logger:    logs.logger(),
	})
	want := &knowingnodev1.Identity{
		PodName:            "backend-0",
		PodNamespace:       "knowingnode",
		PodIp:              "10.244.0.5",
		PodIps:             []string{"10.244.0.5", "fd00::5"},
		PodUid:             "0b7c6f6e-1",
		NodeName:           "node-a",
		NodeIp:             "192.168.1.10",
		ServiceAccount:     "backend",
		CpuLimitMillicores: 500,
		MemoryLimitBytes:   134217728,
		Hostname:           "os-host",
		Tier:               knowingnodev1.Tier_TIER_BACKEND,
	}
	// Compare what the environment decides; start time, build and sources
	// are checked apart.
	got := proto.Clone(id).(*knowingnodev1.Identity)
	got.StartTime, got.Build, got.Sources = nil, nil, nil
	if !proto.Equal(got, want) {
		t.Errorf("Load =\n%v\nwant\n%v", got, want)
	}
	if !id.GetStartTime().AsTime().Equal(start) {
		t.Errorf("start time %v, want %v", id.GetStartTime().AsTime(), start)
	}
	if id.GetBuild().GetGoVersion() == "" {
		t.Error("build info lacks the Go version")
	}
	for _, f := range []string{FieldPodName, FieldPodNamespace, FieldPodIP, FieldPodIPs, FieldPodUID, FieldNodeName,
		FieldNodeIP, FieldServiceAccount, FieldCPULimit, FieldMemoryLimit} {
		if got := id.Sources[f]; got != downward {
			t.Errorf("source of %s = %v, want %v", f, got, downward)
		}
	}
	// No volume directory given: labels, annotations and what is read from
	// them absent, silently.
	for _, f := range []string{FieldLabels, FieldAnnotations, FieldZone, FieldRegion} {
		if got := id.Sources[f]; got != absent {
			t.Errorf("source of %s = %v, want %v", f, got, absent)
		}
	}
	if w := warnings(logs.records(t), "msg"); len(w) != 0 {
		t.Errorf("warnings logged with a complete environment: %v", w)
	}
}

func TestLoadPodIPs(t *testing.T) {
	machine := fakeMachine{host: "h", addrs: []net.Addr{
		ipnet("127.0.0.1/8"),                  // loopback: skipped
		ipnet("fe80::1/64"),                   // link-local: skipped
		ipnet("fd00::7/64"),                   // v6 listed after v4
		ipnet("172.16.0.9/24"),                // the primary
		&net.IPAddr{IP: net.IPv4(1, 2, 3, 4)}, // not an IPNet: skipped
	}}
	tests := []struct {
		name       string
		env        map[string]string
		machine    fakeMachine
		wantIP     string
		wantIPs    []string
		wantIPSrc  knowingnodev1.Source
		wantIPsSrc knowingnodev1.Source
	}{
		{
			name:      "POD_IP only: the list is the primary",
			env:       map[string]string{EnvPodIP: "10.0.0.1"},
			machine:   machine,
			wantIP:    "10.0.0.1",
			wantIPs:   []string{"10.0.0.1"},
			wantIPSrc: downward, wantIPsSrc: downward,
		},
		{
			name:      "POD_IPS only: the primary is its first",
			env:       map[string]string{EnvPodIPs: "10.0.0.1, fd00::1"},
			machine:   machine,
			wantIP:    "10.0.0.1",
			wantIPs:   []string{"10.0.0.1", "fd00::1"},
			wantIPSrc: downward, wantIPsSrc: downward,
		},
		{
			name:      "neither: interface addresses, v4 first",
			machine:   machine,
			wantIP:    "172.16.0.9",
			wantIPs:   []string{"172.16.0.9", "fd00::7"},
			wantIPSrc: fallback, wantIPsSrc: fallback,
		},
		{
			name:      "neither, and only loopback",
			machine:   fakeMachine{host: "h", addrs: []net.Addr{ipnet("127.0.0.1/8"), ipnet("::1/128")}},
			wantIPSrc: absent, wantIPsSrc: absent,
		},
		{
			name:      "neither, and interfaces fail",
			machine:   fakeMachine{host: "h", addrErr: errors.New("no netlink")},
			wantIPSrc: absent, wantIPsSrc: absent,
		},
		{
			name:      "blank POD_IP is absent",
			env:       map[string]string{EnvPodIP: "  "},
			machine:   fakeMachine{host: "h"},
			wantIPSrc: absent, wantIPsSrc: absent,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id := Load(Options{Getenv: envOf(tt.env), Machine: tt.machine})
			if id.PodIp != tt.wantIP || !slices.Equal(id.PodIps, tt.wantIPs) {
				t.Errorf("pod_ip %q pod_ips %q; want %q %q", id.PodIp, id.PodIps, tt.wantIP, tt.wantIPs)
			}
			if id.Sources[FieldPodIP] != tt.wantIPSrc || id.Sources[FieldPodIPs] != tt.wantIPsSrc {
				t.Errorf("sources pod_ip %v pod_ips %v; want %v %v",
					id.Sources[FieldPodIP], id.Sources[FieldPodIPs], tt.wantIPSrc, tt.wantIPsSrc)
			}
		})
	}
}

func TestLoadPodNameFallback(t *testing.T) {
	tests := []struct {
		name     string
		env      map[string]string
		machine  fakeMachine
		wantName string
		wantHost string
		wantSrc  knowingnodev1.Source
		wantWarn int
	}{
		{
			name:     "from env, hostname reported apart",
			env:      map[string]string{EnvPodName: "backend-0"},
			machine:  fakeMachine{host: "node-host"},
			wantName: "backend-0", wantHost: "node-host", wantSrc: downward,
		},
		{
			name:     "hostname stands in",
			machine:  fakeMachine{host: "backend-7d9f"},
			wantName: "backend-7d9f", wantHost: "backend-7d9f", wantSrc: fallback,
		},
		{
			name:     "no hostname either",
			machine:  fakeMachine{hostErr: errors.New("uts gone")},
			wantSrc:  absent,
			wantWarn: 1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var logs logRecords
			tt.machine.addrs = []net.Addr{ipnet("10.1.1.1/24")}
			id := Load(Options{Getenv: envOf(tt.env), Machine: tt.machine, Logger: logs.logger()})
			if id.PodName != tt.wantName || id.Hostname != tt.wantHost || id.Sources[FieldPodName] != tt.wantSrc {
				t.Errorf("pod_name %q (%v) hostname %q; want %q (%v) %q",
					id.PodName, id.Sources[FieldPodName], id.Hostname, tt.wantName, tt.wantSrc, tt.wantHost)
			}
			if n := len(logs.records(t)); n != tt.wantWarn {
				t.Errorf("%d log records, want %d", n, tt.wantWarn)
			}
		})
	}
}

func TestLoadLimits(t *testing.T) {
	tests := []struct {
		name     string
		cpu, mem string
		wantCPU  int64
		wantMem  int64
		cpuSrc   knowingnodev1.Source
		memSrc   knowingnodev1.Source
		warnEnvs []string
	}{
		{name: "both", cpu: "250", mem: "1048576", wantCPU: 250, wantMem: 1048576, cpuSrc: downward, memSrc: downward},
		{name: "unset", cpuSrc: absent, memSrc: absent},
		{name: "zero is a value", cpu: "0", mem: "0", cpuSrc: downward, memSrc: downward},
		// Without a divisor the kubelet writes cores, rounded up: "1".
		// With the wrong form it is not a number at all.
		{name: "quantity suffix", cpu: "500m", mem: "128Mi", cpuSrc: absent, memSrc: absent,
			warnEnvs: []string{EnvCPULimit, EnvMemoryLimit}},
		{name: "fraction", cpu: "0.5", mem: "64", wantMem: 64, cpuSrc: absent, memSrc: downward,
			warnEnvs: []string{EnvCPULimit}},
		{name: "negative", cpu: "-1", cpuSrc: absent, memSrc: absent, warnEnvs: []string{EnvCPULimit}},
		{name: "overflow", cpu: "99999999999999999999", cpuSrc: absent, memSrc: absent, warnEnvs: []string{EnvCPULimit}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var logs logRecords
			id := Load(Options{
				Getenv:  envOf(map[string]string{EnvCPULimit: tt.cpu, EnvMemoryLimit: tt.mem, EnvPodName: "p", EnvPodIP: "10.0.0.1"}),
				Machine: fakeMachine{host: "h"},
				Logger:  logs.logger(),
			})
			if id.CpuLimitMillicores != tt.wantCPU || id.MemoryLimitBytes != tt.wantMem {
				t.Errorf("cpu %d mem %d; want %d %d", id.CpuLimitMillicores, id.MemoryLimitBytes, tt.wantCPU, tt.wantMem)
			}
			if id.Sources[FieldCPULimit] != tt.cpuSrc || id.Sources[FieldMemoryLimit] != tt.memSrc {
				t.Errorf("sources cpu %v mem %v; want %v %v", id.Sources[FieldCPULimit], id.Sources[FieldMemoryLimit], tt.cpuSrc, tt.memSrc)
			}
			w := warnings(logs.records(t), "env")
			want := map[string]int{}
			for _, e := range tt.warnEnvs {
				want[e] = 1
			}
			if !mapsEqual(w, want) {
				t.Errorf("warnings by env %v, want %v (exactly one per malformed value)", w, want)
			}
		})
	}
}

func mapsEqual(a, b map[string]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// kubeletFormat is how the kubelet writes metadata.labels/annotations
// (k8s.io/kubernetes/pkg/fieldpath.FormatMap): sorted key=%q lines, no
// trailing newline.
func kubeletFormat(m map[string]string) string {
	var keys []string
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(k + "=" + quote(m[k]))
	}
	return b.String()
}

func quote(s string) string { return strconv.Quote(s) } // what %q writes

func TestLoadVolume(t *testing.T) {
	labels := map[string]string{
		"app.kubernetes.io/name":             "backend",
		"statefulset.kubernetes.io/pod-name": "backend-0",
		"empty":                              "",
	}
	annotations := map[string]string{
		"kubectl.kubernetes.io/last-applied-configuration": "{\"kind\":\"Pod\",\n\"spec\":{}}\n",
		"note": `tab	"quoted" back\slash é`,
		"url":  "http://x/?a=b", // '=' in a value; keys never hold one
	}
	tests := []struct {
		name      string
		files     map[string]string // file -> content; absent key means no file
		noDir     bool
		want      map[string]map[string]string // field -> value
		wantSrc   map[string]knowingnodev1.Source
		wantWarns map[string]int // by field
	}{
		{
			name:    "both files in the kubelet format",
			files:   map[string]string{FileLabels: kubeletFormat(labels), FileAnnotations: kubeletFormat(annotations)},
			want:    map[string]map[string]string{FieldLabels: labels, FieldAnnotations: annotations},
			wantSrc: map[string]knowingnodev1.Source{FieldLabels: downward, FieldAnnotations: downward},
		},
		{
			name:    "empty files: no labels is a valid answer",
			files:   map[string]string{FileLabels: "", FileAnnotations: "\n"},
			want:    map[string]map[string]string{FieldLabels: {}, FieldAnnotations: {}},
			wantSrc: map[string]knowingnodev1.Source{FieldLabels: downward, FieldAnnotations: downward},
		},
		{
			name:      "annotations missing",
			files:     map[string]string{FileLabels: kubeletFormat(labels)},
			want:      map[string]map[string]string{FieldLabels: labels},
			wantSrc:   map[string]knowingnodev1.Source{FieldLabels: downward, FieldAnnotations: absent},
			wantWarns: map[string]int{FieldAnnotations: 1},
		},
		{
			name:      "directory missing",
			noDir:     true,
			wantSrc:   map[string]knowingnodev1.Source{FieldLabels: absent, FieldAnnotations: absent},
			wantWarns: map[string]int{FieldLabels: 1, FieldAnnotations: 1},
		},
		{
			name:      "labels unquoted",
			files:     map[string]string{FileLabels: "app=backend", FileAnnotations: kubeletFormat(annotations)},
			want:      map[string]map[string]string{FieldAnnotations: annotations},
			wantSrc:   map[string]knowingnodev1.Source{FieldLabels: absent, FieldAnnotations: downward},
			wantWarns: map[string]int{FieldLabels: 1},
		},
		{
			name:      "line without =, bad escape",
			files:     map[string]string{FileLabels: "app=\"backend\"\njunk", FileAnnotations: `a="\q"`},
			wantSrc:   map[string]knowingnodev1.Source{FieldLabels: absent, FieldAnnotations: absent},
			wantWarns: map[string]int{FieldLabels: 1, FieldAnnotations: 1},
		},
		{
			name:      "empty key",
			files:     map[string]string{FileLabels: `="v"`, FileAnnotations: ""},
			want:      map[string]map[string]string{FieldAnnotations: {}},
			wantSrc:   map[string]knowingnodev1.Source{FieldLabels: absent, FieldAnnotations: downward},
			wantWarns: map[string]int{FieldLabels: 1},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if tt.noDir {
				dir = filepath.Join(dir, "not-mounted")
			}
			for f, c := range tt.files {
				if err := os.WriteFile(filepath.Join(dir, f), []byte(c), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			var logs logRecords
			id := Load(Options{
				Getenv:      envOf(map[string]string{EnvPodName: "p", EnvPodIP: "10.0.0.1"}),
				DownwardDir: dir,
				Machine:     fakeMachine{host: "h"},
				Logger:      logs.logger(),
				// Parsing only: TestAnnotationsWithheld tests the filter.
				Annotations: &AnnotationFilter{Allow: []string{"*"}},
			})
			got := map[string]map[string]string{FieldLabels: id.Labels, FieldAnnotations: id.Annotations}
			for _, f := range []string{FieldLabels, FieldAnnotations} {
				if !stringMapsEqual(got[f], tt.want[f]) {
					t.Errorf("%s = %q, want %q", f, got[f], tt.want[f])
				}
				if id.Sources[f] != tt.wantSrc[f] {
					t.Errorf("source of %s = %v, want %v", f, id.Sources[f], tt.wantSrc[f])
				}
			}
			w := warnings(logs.records(t), "field")
			want := tt.wantWarns
			if want == nil {
				want = map[string]int{}
			}
			if !mapsEqual(w, want) {
				t.Errorf("warnings by field %v, want %v", w, want)
			}
		})
	}
}

func stringMapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if bv, ok := b[k]; !ok || bv != v {
			return false
		}
	}
	return true
}

func TestParseKeyValues(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    map[string]string
		wantErr string
	}{
		{name: "empty", in: "", want: map[string]string{}},
		{name: "one", in: `a="b"`, want: map[string]string{"a": "b"}},
		{name: "crlf and blank lines", in: "a=\"1\"\r\n\r\nb=\"2\"\n", want: map[string]string{"a": "1", "b": "2"}},
		{name: "escapes", in: `k="line1\nline2\t\"q\" \\ \u00e9"`, want: map[string]string{"k": "line1\nline2\t\"q\" \\ é"}},
		{name: "value with =", in: `k="a=b=c"`, want: map[string]string{"k": "a=b=c"}},
		{name: "prefixed key", in: `example.com/team="x"`, want: map[string]string{"example.com/team": "x"}},
		{name: "no =", in: "a=\"1\"\nnope", wantErr: "line 2"},
		{name: "unquoted", in: "a=1", wantErr: "line 1"},
		{name: "unterminated", in: `a="1`, wantErr: "line 1"},
		{name: "empty key", in: `="1"`, wantErr: "line 1"},
		{name: "long annotation", in: `a="` + strings.Repeat("x", 200_000) + `"`, want: map[string]string{"a": strings.Repeat("x", 200_000)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseKeyValues([]byte(tt.in))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one mentioning %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !stringMapsEqual(got, tt.want) {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestServer(t *testing.T) {
	id := Load(Options{Getenv: envOf(map[string]string{EnvPodName: "backend-0", EnvNodeName: "node-a"}), Machine: fakeMachine{host: "h"}})
	s := NewServer(id)
	for range 2 { // the same answer each time
		resp, err := s.GetIdentity(context.Background(), &knowingnodev1.GetIdentityRequest{})
		if err != nil {
			t.Fatal(err)
		}
		if resp.GetIdentity().GetPodName() != "backend-0" || resp.GetIdentity().GetNodeName() != "node-a" {
			t.Errorf("GetIdentity = %v", resp.GetIdentity())
		}
	}
	if s.Identity() != id {
		t.Error("Identity() is not the identity served")
	}
}

// TestLoadVolumeKubeletLayout reads the volume as the kubelet lays it out:
// the files live in a timestamped directory reached through the ..data
// symlink, which is swapped atomically on update.
func TestLoadVolumeKubeletLayout(t *testing.T) {
	dir := t.TempDir()
	ts := filepath.Join(dir, "..2026_01_02_03_04_05.000000001")
	if err := os.Mkdir(ts, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(ts, FileLabels), []byte(`app="backend"`), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(ts, FileAnnotations), []byte(`note="a"`), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Base(ts), filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{FileLabels, FileAnnotations} {
		if err := os.Symlink(filepath.Join("..data", f), filepath.Join(dir, f)); err != nil {
			t.Fatal(err)
		}
	}
	id := Load(Options{Getenv: envOf(nil), DownwardDir: dir, Machine: fakeMachine{host: "h"}})
	if id.Labels["app"] != "backend" || id.Annotations["note"] != "a" {
		t.Errorf("labels %v annotations %v", id.Labels, id.Annotations)
	}
	if id.Sources[FieldLabels] != downward || id.Sources[FieldAnnotations] != downward {
		t.Errorf("sources %v", id.Sources)
	}
}

// TestLoadTopology reads zone and region from the labels file: the labels the
// PodTopologyLabels admission copies from the node onto the pod.
func TestLoadTopology(t *testing.T) {
	long := strings.Repeat("a", 64)
	tests := []struct {
		name         string
		labels       *string // nil: no labels file
		zone, region string
		wantSrc      map[string]knowingnodev1.Source
		wantWarns    map[string]int // by field
	}{
		{
			name:    "both labels",
			labels:  ptr(kubeletFormat(map[string]string{LabelZone: "eu-west-1a", LabelRegion: "eu-west-1", "app": "backend"})),
			zone:    "eu-west-1a",
			region:  "eu-west-1",
			wantSrc: map[string]knowingnodev1.Source{FieldZone: downward, FieldRegion: downward},
		},
		{
			name:    "zone only: a node labelled with a zone and no region",
			labels:  ptr(kubeletFormat(map[string]string{LabelZone: "zone-a"})),
			zone:    "zone-a",
			wantSrc: map[string]knowingnodev1.Source{FieldZone: downward, FieldRegion: absent},
		},
		{
			name:    "neither: the node has no topology labels, or the admission is off",
			labels:  ptr(kubeletFormat(map[string]string{"app": "backend"})),
			wantSrc: map[string]knowingnodev1.Source{FieldZone: absent, FieldRegion: absent},
		},
		{
			name:    "empty value is no zone",
			labels:  ptr(kubeletFormat(map[string]string{LabelZone: ""})),
			wantSrc: map[string]knowingnodev1.Source{FieldZone: absent, FieldRegion: absent},
		},
		{
			name:    "63 characters, the longest label value",
			labels:  ptr(kubeletFormat(map[string]string{LabelZone: long[:63]})),
			zone:    long[:63],
			wantSrc: map[string]knowingnodev1.Source{FieldZone: downward, FieldRegion: absent},
		},
		{
			name:      "64 characters: longer than any label value",
			labels:    ptr(kubeletFormat(map[string]string{LabelZone: long, LabelRegion: "r"})),
			region:    "r",
			wantSrc:   map[string]knowingnodev1.Source{FieldZone: absent, FieldRegion: downward},
			wantWarns: map[string]int{FieldZone: 1},
		},
		{
			name:      "characters no label value may hold",
			labels:    ptr(kubeletFormat(map[string]string{LabelZone: "zone a", LabelRegion: "-r"})),
			wantSrc:   map[string]knowingnodev1.Source{FieldZone: absent, FieldRegion: absent},
			wantWarns: map[string]int{FieldZone: 1, FieldRegion: 1},
		},
		{
			name:      "no labels file",
			wantSrc:   map[string]knowingnodev1.Source{FieldZone: absent, FieldRegion: absent},
			wantWarns: map[string]int{FieldLabels: 1},
		},
		{
			name:      "labels file malformed",
			labels:    ptr("topology.kubernetes.io/zone=zone-a"),
			wantSrc:   map[string]knowingnodev1.Source{FieldZone: absent, FieldRegion: absent},
			wantWarns: map[string]int{FieldLabels: 1},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if tt.labels != nil {
				if err := os.WriteFile(filepath.Join(dir, FileLabels), []byte(*tt.labels), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			if err := os.WriteFile(filepath.Join(dir, FileAnnotations), nil, 0o644); err != nil {
				t.Fatal(err)
			}
			var logs logRecords
			id := Load(Options{Getenv: envOf(nil), DownwardDir: dir, Machine: fakeMachine{host: "h"}, Logger: logs.logger()})
			if id.Zone != tt.zone || id.Region != tt.region {
				t.Errorf("zone %q region %q, want %q %q", id.Zone, id.Region, tt.zone, tt.region)
			}
			for _, f := range []string{FieldZone, FieldRegion} {
				if id.Sources[f] != tt.wantSrc[f] {
					t.Errorf("source of %s = %v, want %v", f, id.Sources[f], tt.wantSrc[f])
				}
			}
			want := tt.wantWarns
			if want == nil {
				want = map[string]int{}
			}
			if w := warnings(logs.records(t), "field"); !mapsEqual(w, want) {
				t.Errorf("warnings by field %v, want %v", w, want)
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }
