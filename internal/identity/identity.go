// Package identity builds a process's Identity from the Kubernetes Downward
// API (environment variables and a downwardAPI volume), falls back to what the
// machine tells where the Downward API is not wired, and serves it over gRPC.
package identity

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"
	"k8s.io/apimachinery/pkg/api/validate/content"

	knowingnodev1 "github.com/knowingnode/knowingnode/gen/knowingnode/v1"
	"github.com/knowingnode/knowingnode/internal/buildinfo"
)

// Environment variables the manifests fill from the Downward API.
const (
	EnvPodName        = "POD_NAME"
	EnvPodNamespace   = "POD_NAMESPACE"
	EnvPodIP          = "POD_IP"
	EnvPodIPs         = "POD_IPS"
	EnvPodUID         = "POD_UID"
	EnvNodeName       = "NODE_NAME"
	EnvNodeIP         = "NODE_IP"
	EnvServiceAccount = "SERVICE_ACCOUNT"
	EnvCPULimit       = "CPU_LIMIT"    // limits.cpu with divisor 1m: millicores
	EnvMemoryLimit    = "MEMORY_LIMIT" // limits.memory with divisor 1: bytes
)

// Files of the downwardAPI volume.
const (
	FileLabels      = "labels"
	FileAnnotations = "annotations"
)

// Source keys: the proto names of the fields whose origin is reported.
const (
	FieldPodName        = "pod_name"
	FieldPodNamespace   = "pod_namespace"
	FieldPodIP          = "pod_ip"
	FieldPodIPs         = "pod_ips"
	FieldPodUID         = "pod_uid"
	FieldNodeName       = "node_name"
	FieldNodeIP         = "node_ip"
	FieldServiceAccount = "service_account"
	FieldLabels         = "labels"
	FieldAnnotations    = "annotations"
	FieldCPULimit       = "cpu_limit_millicores"
	FieldMemoryLimit    = "memory_limit_bytes"
	FieldZone           = "zone"
	FieldRegion         = "region"
)

// Pod labels the zone and region are read from. The PodTopologyLabels
// admission (KEP-4742; gate PodTopologyLabelsAdmission, beta and on by
// default since v1.35) copies them from the node onto the pod when the pod is
// bound, so the downwardAPI volume's "labels" file carries them.
const (
	LabelZone   = "topology.kubernetes.io/zone"
	LabelRegion = "topology.kubernetes.io/region"
)

// Machine is what the fallbacks read; injected so tests control it.
type Machine interface {
	Hostname() (string, error)
	// InterfaceAddrs returns the machine's addresses; loopback ones are skipped.
	InterfaceAddrs() ([]net.Addr, error)
}

// OS is the Machine of the running process.
type OS struct{}

// Hostname returns the kernel's host name.
func (OS) Hostname() (string, error) { return os.Hostname() }

// InterfaceAddrs returns the addresses of the machine's interfaces.
func (OS) InterfaceAddrs() ([]net.Addr, error) { return net.InterfaceAddrs() }

// Options say where to read the identity from.
type Options struct {
	Tier        knowingnodev1.Tier
	Getenv      func(string) string
	DownwardDir string // the downwardAPI volume mount; empty to skip
	Machine     Machine
	StartTime   time.Time
	Logger      *slog.Logger
	// Annotations decides which annotations are revealed; nil withholds
	// those DefaultDeny matches.
	Annotations *AnnotationFilter
}

// Load builds the identity. It never fails: a missing or malformed source
// leaves its field empty, marks it, and logs one warning.
func Load(o Options) *knowingnodev1.Identity {
	if o.Getenv == nil {
		o.Getenv = os.Getenv
	}
	if o.Machine == nil {
		o.Machine = OS{}
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Annotations == nil {
		o.Annotations = &AnnotationFilter{Deny: DefaultDeny}
	}
	id := &knowingnodev1.Identity{
		Tier:      o.Tier,
		StartTime: timestamppb.New(o.StartTime),
		Build:     buildinfo.Get(),
		Sources:   map[string]knowingnodev1.Source{},
	}
	env := func(field, name string, dst *string) {
		*dst = valid(strings.TrimSpace(o.Getenv(name)))
		id.Sources[field] = sourceOf(*dst != "")
	}
	env(FieldPodName, EnvPodName, &id.PodName)
	env(FieldPodNamespace, EnvPodNamespace, &id.PodNamespace)
	env(FieldPodIP, EnvPodIP, &id.PodIp)
	env(FieldPodUID, EnvPodUID, &id.PodUid)
	env(FieldNodeName, EnvNodeName, &id.NodeName)
	env(FieldNodeIP, EnvNodeIP, &id.NodeIp)
	env(FieldServiceAccount, EnvServiceAccount, &id.ServiceAccount)

	if ips := splitList(o.Getenv(EnvPodIPs)); len(ips) > 0 {
		id.PodIps = ips
		id.Sources[FieldPodIPs] = knowingnodev1.Source_SOURCE_DOWNWARD_API
		if id.PodIp == "" {
			// status.podIPs wired but status.podIP not: its first entry is
			// the primary, and still the Downward API's word, not a guess.
			id.PodIp = ips[0]
			id.Sources[FieldPodIP] = knowingnodev1.Source_SOURCE_DOWNWARD_API
		}
	} else if id.PodIp != "" {
		// status.podIPs not wired but status.podIP is: the primary is the list.
		id.PodIps = []string{id.PodIp}
		id.Sources[FieldPodIPs] = knowingnodev1.Source_SOURCE_DOWNWARD_API
	} else {
		id.Sources[FieldPodIPs] = knowingnodev1.Source_SOURCE_ABSENT
	}

	id.CpuLimitMillicores = quantity(o, EnvCPULimit, FieldCPULimit, id.Sources)
	id.MemoryLimitBytes = quantity(o, EnvMemoryLimit, FieldMemoryLimit, id.Sources)

	host, err := o.Machine.Hostname()
	if err != nil {
		o.Logger.Warn("hostname unavailable", "err", err)
	}
	host = valid(host)
	id.Hostname = host

	// Fallbacks, marked as such so a user sees the manifest lacks the wiring.
	if id.PodName == "" && host != "" {
		id.PodName = host // in a pod the hostname is the pod name
		id.Sources[FieldPodName] = knowingnodev1.Source_SOURCE_FALLBACK
	}
	if id.PodIp == "" {
		if ips := machineIPs(o); len(ips) > 0 {
			id.PodIp = ips[0]
			id.Sources[FieldPodIP] = knowingnodev1.Source_SOURCE_FALLBACK
			if len(id.PodIps) == 0 {
				id.PodIps = ips
				id.Sources[FieldPodIPs] = knowingnodev1.Source_SOURCE_FALLBACK
			}
		}
	}

	id.Labels = readVolumeFile(o, FileLabels, FieldLabels, id.Sources)
	id.Zone = topologyLabel(o, id.Labels, LabelZone, FieldZone, id.Sources)
	id.Region = topologyLabel(o, id.Labels, LabelRegion, FieldRegion, id.Sources)
	annotations := readVolumeFile(o, FileAnnotations, FieldAnnotations, id.Sources)
	var withheld []string
	id.Annotations, withheld = o.Annotations.Apply(annotations)
	if len(withheld) > 0 {
		// Keys only: the values are what is withheld.
		o.Logger.Info("annotations withheld from the identity; --annotations-allow reveals them", "keys", withheld)
	}
	return id
}

// topologyLabel returns the label's value when it is a valid label value (at
// most 63 characters of [-A-Za-z0-9_.], alphanumeric at both ends), as the
// API server would have demanded of it. The labels file is the kubelet's, but
// a hand-made volume or a test could put anything there, and the zone is
// counted and shown in summaries: a bad value is left out, with a warning
// naming the limit, rather than carried into every fan-out.
func topologyLabel(o Options, labels map[string]string, key, field string, sources map[string]knowingnodev1.Source) string {
	v, ok := labels[key]
	if !ok {
		sources[field] = knowingnodev1.Source_SOURCE_ABSENT
		return ""
	}
	if errs := content.IsLabelValue(v); len(errs) > 0 {
		o.Logger.Warn("ignoring a topology label that is not a valid label value",
			"field", field, "label", key, "bytes", len(v), "max_bytes", content.LabelValueMaxLength,
			"err", strings.Join(errs, "; "))
		sources[field] = knowingnodev1.Source_SOURCE_ABSENT
		return ""
	}
	sources[field] = sourceOf(v != "")
	return v
}

func sourceOf(found bool) knowingnodev1.Source {
	if found {
		return knowingnodev1.Source_SOURCE_DOWNWARD_API
	}
	return knowingnodev1.Source_SOURCE_ABSENT
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' }) {
		out = append(out, valid(f))
	}
	return out
}

// valid replaces bytes that are not UTF-8, which proto refuses to encode:
// one such value would make the whole identity unservable.
func valid(s string) string { return strings.ToValidUTF8(s, "\uFFFD") }

func quantity(o Options, env, field string, sources map[string]knowingnodev1.Source) int64 {
	v := strings.TrimSpace(o.Getenv(env))
	if v == "" {
		sources[field] = knowingnodev1.Source_SOURCE_ABSENT
		return 0
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		o.Logger.Warn("ignoring malformed Downward API value; want a non-negative integer (use a resourceFieldRef divisor)",
			"env", env, "value", v)
		sources[field] = knowingnodev1.Source_SOURCE_ABSENT
		return 0
	}
	sources[field] = knowingnodev1.Source_SOURCE_DOWNWARD_API
	return n
}

func machineIPs(o Options) []string {
	addrs, err := o.Machine.InterfaceAddrs()
	if err != nil {
		o.Logger.Warn("interface addresses unavailable", "err", err)
		return nil
	}
	var v4, v6 []string
	for _, a := range addrs {
		ipn, ok := a.(*net.IPNet)
		if !ok || ipn.IP.IsLoopback() || ipn.IP.IsLinkLocalUnicast() {
			continue
		}
		if ipn.IP.To4() != nil {
			v4 = append(v4, ipn.IP.String())
		} else {
			v6 = append(v6, ipn.IP.String())
		}
	}
	return append(v4, v6...) // IPv4 first, as a pod's primary IP usually is
}

func readVolumeFile(o Options, file, field string, sources map[string]knowingnodev1.Source) map[string]string {
	sources[field] = knowingnodev1.Source_SOURCE_ABSENT
	if o.DownwardDir == "" {
		return nil
	}
	path := filepath.Join(o.DownwardDir, file)
	b, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			o.Logger.Warn("Downward API volume file missing; mount a downwardAPI volume to report it", "field", field, "path", path)
		} else {
			o.Logger.Warn("Downward API volume file unreadable", "field", field, "path", path, "err", err)
		}
		return nil
	}
	m, err := ParseKeyValues(b)
	if err != nil {
		o.Logger.Warn("Downward API volume file malformed; field left empty", "field", field, "path", path, "err", err)
		return nil
	}
	sources[field] = knowingnodev1.Source_SOURCE_DOWNWARD_API
	return m
}

// ParseKeyValues parses the format the kubelet writes for metadata.labels and
// metadata.annotations: one key="value" per line, the value a quoted Go string.
func ParseKeyValues(b []byte) (map[string]string, error) {
	m := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 0, 64*1024), 1<<20) // annotations can be long
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("line %d: want key=\"value\", got %q", n, line)
		}
		uv, err := strconv.Unquote(v)
		if err != nil {
			return nil, fmt.Errorf("line %d: value of %q is not a quoted string: %v", n, k, err)
		}
		m[valid(k)] = valid(uv)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return m, nil
}
