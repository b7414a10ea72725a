package discovery

import (
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func ptr[T any](v T) *T { return &v }

// ep builds a slice endpoint; conds is any of "ready", "notready",
// "serving", "notserving", "terminating" (unset conditions stay nil).
func ep(addr, node, zone string, conds ...string) discoveryv1.Endpoint {
	e := discoveryv1.Endpoint{Addresses: []string{addr}}
	if node != "" {
		e.NodeName = ptr(node)
		e.TargetRef = &corev1.ObjectReference{Kind: "Pod", Name: "pod-" + node}
	}
	if zone != "" {
		e.Zone = ptr(zone)
	}
	for _, c := range conds {
		switch c {
		case "ready":
			e.Conditions.Ready = ptr(true)
		case "notready":
			e.Conditions.Ready = ptr(false)
		case "serving":
			e.Conditions.Serving = ptr(true)
		case "notserving":
			e.Conditions.Serving = ptr(false)
		case "terminating":
			e.Conditions.Terminating = ptr(true)
		}
	}
	return e
}

func slice(name string, at discoveryv1.AddressType, ports map[string]int32, eps ...discoveryv1.Endpoint) *discoveryv1.EndpointSlice {
	s := &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Name: name, Labels: map[string]string{discoveryv1.LabelServiceName: "backend"}},
		AddressType: at,
		Endpoints:   eps,
	}
	for n, p := range ports {
		s.Ports = append(s.Ports, discoveryv1.EndpointPort{Name: ptr(n), Port: ptr(p), Protocol: ptr(corev1.ProtocolTCP)})
	}
	return s
}

// short renders endpoints as "addr[flags]@slices", flags R(eady) S(erving) T(erminating).
func short(eps []Endpoint) []string {
	var out []string
	for _, e := range eps {
		f := ""
		if e.Slice.Ready {
			f += "R"
		}
		if e.Slice.Serving {
			f += "S"
		}
		if e.Slice.Terminating {
			f += "T"
		}
		out = append(out, e.Addr+"["+f+"]@"+e.Slice.Slices)
	}
	return out
}

func TestMergeSlices(t *testing.T) {
	grpc := map[string]int32{"grpc": 9090}
	v4, v6 := discoveryv1.AddressTypeIPv4, discoveryv1.AddressTypeIPv6
	tests := []struct {
		name   string
		port   string
		slices []*discoveryv1.EndpointSlice
		want   []string
	}{
		{
			name: "one slice, nil conditions read as ready and serving",
			port: "grpc",
			slices: []*discoveryv1.EndpointSlice{
				slice("a", v4, grpc, ep("10.0.0.2", "n1", "z1"), ep("10.0.0.1", "n2", "z2")),
			},
			want: []string{"10.0.0.1:9090[RS]@a", "10.0.0.2:9090[RS]@a"},
		},
		{
			name: "several slices are merged, whatever order they come in",
			port: "grpc",
			slices: []*discoveryv1.EndpointSlice{
				slice("c", v4, grpc, ep("10.0.0.5", "", "")),
				slice("a", v4, grpc, ep("10.0.0.1", "", ""), ep("10.0.0.2", "", "")),
				slice("b", v4, grpc, ep("10.0.0.3", "", ""), ep("10.0.0.4", "", "")),
			},
			want: []string{"10.0.0.1:9090[RS]@a", "10.0.0.2:9090[RS]@a", "10.0.0.3:9090[RS]@b", "10.0.0.4:9090[RS]@b", "10.0.0.5:9090[RS]@c"},
		},
		{
			name: "an address in two slices is one endpoint with the better conditions",
			port: "grpc",
			slices: []*discoveryv1.EndpointSlice{
				slice("b", v4, grpc, ep("10.0.0.1", "", "", "notready", "serving", "terminating")),
				slice("a", v4, grpc, ep("10.0.0.1", "", "", "ready", "serving")),
			},
			want: []string{"10.0.0.1:9090[RS]@a,b"},
		},
		{
			name: "dual-stack: both families, IPv4 first, IPv6 bracketed",
			port: "grpc",
			slices: []*discoveryv1.EndpointSlice{
				slice("v6", v6, grpc, ep("fd00::2", "", ""), ep("fd00:0:0::1", "", "")),
				slice("v4", v4, grpc, ep("10.0.0.1", "", "")),
			},
			want: []string{"10.0.0.1:9090[RS]@v4", "[fd00::1]:9090[RS]@v6", "[fd00::2]:9090[RS]@v6"},
		},
		{
			name: "addresses of the wrong family and FQDN slices are skipped",
			port: "grpc",
			slices: []*discoveryv1.EndpointSlice{
				slice("v4", v4, grpc, ep("fd00::1", "", ""), ep("10.0.0.1", "", ""), ep("not-an-ip", "", "")),
				slice("fqdn", discoveryv1.AddressTypeFQDN, grpc, ep("backend.example", "", "")),
			},
			want: []string{"10.0.0.1:9090[RS]@v4"},
		},
		{
			name: "conditions kept: not ready, terminating but serving",
			port: "grpc",
			slices: []*discoveryv1.EndpointSlice{
				slice("a", v4, grpc,
					ep("10.0.0.1", "", "", "ready", "serving"),
					ep("10.0.0.2", "", "", "notready", "notserving"),
					ep("10.0.0.3", "", "", "notready", "serving", "terminating")),
			},
			want: []string{"10.0.0.1:9090[RS]@a", "10.0.0.2:9090[]@a", "10.0.0.3:9090[ST]@a"},
		},
		{
			name: "a port name is looked up per slice; a slice without it adds nothing",
			port: "grpc",
			slices: []*discoveryv1.EndpointSlice{
				slice("a", v4, map[string]int32{"grpc": 9000}, ep("10.0.0.1", "", "")),
				slice("b", v4, map[string]int32{"grpc": 9001}, ep("10.0.0.2", "", "")),
				slice("c", v4, map[string]int32{"http": 8080}, ep("10.0.0.3", "", "")),
			},
			want: []string{"10.0.0.1:9000[RS]@a", "10.0.0.2:9001[RS]@b"},
		},
		{
			name: "a port number is dialed as given",
			port: "7000",
			slices: []*discoveryv1.EndpointSlice{
				slice("a", v4, nil, ep("10.0.0.1", "", "")),
			},
			want: []string{"10.0.0.1:7000[RS]@a"},
		},
		{
			name:   "no endpoints",
			port:   "grpc",
			slices: []*discoveryv1.EndpointSlice{slice("a", v4, grpc)},
			want:   nil,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := short(MergeSlices(tt.slices, tt.port))
			if !slices.Equal(got, tt.want) {
				t.Errorf("MergeSlices =\n  %v\nwant\n  %v", got, tt.want)
			}
		})
	}
}

func TestMergeSlicesKeepsDetails(t *testing.T) {
	e := ep("10.0.0.1", "node-1", "zone-a", "ready")
	e.Hostname = ptr("backend-0")
	e.Hints = &discoveryv1.EndpointHints{
		ForZones: []discoveryv1.ForZone{{Name: "zone-a"}, {Name: "zone-b"}},
		ForNodes: []discoveryv1.ForNode{{Name: "node-1"}},
	}
	got := MergeSlices([]*discoveryv1.EndpointSlice{slice("a", discoveryv1.AddressTypeIPv4, map[string]int32{"grpc": 9090}, e)}, "grpc")
	want := Endpoint{Addr: "10.0.0.1:9090", Slice: SliceInfo{
		Known: true, Ready: true, Serving: true,
		NodeName: "node-1", Zone: "zone-a", Hostname: "backend-0", TargetRef: "Pod/pod-node-1",
		HintZones: "zone-a,zone-b", HintNodes: "node-1", Slices: "a",
	}}
	if len(got) != 1 || got[0] != want {
		t.Fatalf("MergeSlices = %+v, want [%+v]", got, want)
	}
}

func TestCallable(t *testing.T) {
	eps := []Endpoint{
		{Addr: "dns:1"}, // DNS: no conditions known, DNS lists ready ones
		{Addr: "k:1", Slice: SliceInfo{Known: true, Ready: true}},
		{Addr: "k:2", Slice: SliceInfo{Known: true, Serving: true, Terminating: true}},
		{Addr: "k:3", Slice: SliceInfo{Known: true}},
	}
	var got []string
	for _, e := range callable(eps) {
		got = append(got, e.Addr)
	}
	if want := []string{"dns:1", "k:1"}; !slices.Equal(got, want) {
		t.Errorf("callable = %v, want %v", got, want)
	}
	if len(eps) != 4 || eps[3].Addr != "k:3" {
		t.Errorf("callable changed its argument: %v", eps)
	}
}

func TestParseKubernetesSpec(t *testing.T) {
	tests := []struct {
		spec, host, ns, port, err string
	}{
		{spec: "kubernetes:///backend.demo:grpc", host: "backend", ns: "demo", port: "grpc"},
		{spec: "kubernetes:///backend.demo:9090", host: "backend", ns: "demo", port: "9090"},
		{spec: "kubernetes:///backend.demo.svc.cluster.local:grpc", host: "backend", ns: "demo", port: "grpc"},
		{spec: "kubernetes://10.96.0.1/backend.demo:grpc", err: "take no server"},
		{spec: "kubernetes:///backend:grpc", err: "want <service>.<namespace>"},
		{spec: "kubernetes:///backend.demo.cluster:grpc", err: "want <service>.<namespace>"},
		{spec: "kubernetes:///backend.demo", err: "want <service>.<namespace>:<port"},
		{spec: "kubernetes:///Backend.demo:grpc", err: `service name "Backend"`},
		{spec: "kubernetes:///backend.de_mo:grpc", err: `namespace "de_mo"`},
		{spec: "kubernetes:///backend.demo:0", err: "want 1..65535"},
		{spec: "kubernetes:///backend.demo:a-very-long-port-name", err: "port name"},
		{spec: "kubernetes:///backend.demo:grpc?x=1", err: `unknown parameter "x"`},
	}
	for _, tt := range tests {
		t.Run(tt.spec, func(t *testing.T) {
			sp, err := ParseSpec(tt.spec)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("ParseSpec(%q) err = %v, want one containing %q", tt.spec, err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseSpec(%q): %v", tt.spec, err)
			}
			if sp.QType != Kubernetes || sp.Host != tt.host || sp.Namespace != tt.ns || sp.Port != tt.port {
				t.Errorf("ParseSpec(%q) = %+v, want service %s namespace %s port %s", tt.spec, sp, tt.host, tt.ns, tt.port)
			}
		})
	}
}
