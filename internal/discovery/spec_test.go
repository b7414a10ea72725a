package discovery

import (
	"slices"
	"strings"
	"testing"
)

func TestParseTarget(t *testing.T) {
	cases := []struct {
		in   string
		want Spec // Raw and Name are checked separately
		err  string
	}{
		{in: "b=backend:9090", want: Spec{QType: A, Host: "backend", Port: "9090"}},
		{in: "b=dns:///backend.default.svc.cluster.local:9090", want: Spec{QType: A, Host: "backend.default.svc.cluster.local", Port: "9090"}},
		{in: "b=dns://127.0.0.1:1053/backend.ns.svc.cluster.local:9090", want: Spec{QType: A, Server: "127.0.0.1:1053", Host: "backend.ns.svc.cluster.local", Port: "9090"}},
		{in: "b=dns://10.96.0.10/backend:9090", want: Spec{QType: A, Server: "10.96.0.10:53", Host: "backend", Port: "9090"}},
		{in: "b=srv:///_grpc._tcp.backend.ns.svc.cluster.local", want: Spec{QType: SRV, Host: "_grpc._tcp.backend.ns.svc.cluster.local"}},
		{in: "b=statefulset:///web.web-headless.ns.svc.cluster.local:9090?replicas=3",
			want: Spec{QType: StatefulSet, StatefulSet: "web", Host: "web-headless.ns.svc.cluster.local", Port: "9090", Replicas: 3, PortName: "grpc"}},
		{in: "b=statefulset:///web.svc:80?port-name=api",
			want: Spec{QType: StatefulSet, StatefulSet: "web", Host: "svc", Port: "80", PortName: "api"}},
		{in: "b=static:///127.0.0.1:1,[::1]:2", want: Spec{QType: Static, Addrs: []string{"127.0.0.1:1", "[::1]:2"}}},

		{in: "noequals", err: "want name=spec"},
		{in: "Bad_Name=backend:1", err: "lower-case"},
		{in: "b=ftp:///x:1", err: `unknown scheme "ftp"`},
		{in: "b=backend", err: "want <name>:<port>"},
		{in: "b=backend:0", err: `port "0": want 1..65535`},
		{in: "b=backend:http", err: `port "http"`},
		{in: "b=dns:///", err: "nothing to resolve"},
		{in: "b=srv:///_grpc._tcp.x:9090", err: "takes no port"},
		{in: "b=statefulset:///web:9090", err: "<statefulset>.<service domain>"},
		{in: "b=statefulset:///web.svc:9090?replicas=0", err: "want 1..1000"},
		{in: "b=statefulset:///web.svc:9090?replicas=5000", err: "want 1..1000"},
		{in: "b=dns:///backend:9090?replicas=3", err: `unknown parameter "replicas"`},
		{in: "b=static://10.0.0.1:53/127.0.0.1:1", err: "take no DNS server"},
		{in: "b=static:///127.0.0.1", err: "want host:port"},
		{in: "b=dns://:53/backend:1", err: "empty host"},
		{in: "b=dns://u@h/backend:1", err: "user info"},
	}
	for _, c := range cases {
		t.Run(c.in, func(t *testing.T) {
			got, err := ParseTarget(c.in)
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("error %v, want one containing %q", err, c.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			name, raw, _ := strings.Cut(c.in, "=")
			c.want.Name, c.want.Raw = name, raw
			if got.Name != c.want.Name || got.Raw != c.want.Raw || got.QType != c.want.QType || got.Server != c.want.Server ||
				got.Host != c.want.Host || got.Port != c.want.Port || got.StatefulSet != c.want.StatefulSet ||
				got.Replicas != c.want.Replicas || got.PortName != c.want.PortName || !slices.Equal(got.Addrs, c.want.Addrs) {
				t.Errorf("got %+v\nwant %+v", got, c.want)
			}
		})
	}
}

func TestParseTargetErrorNamesTheTarget(t *testing.T) {
	_, err := ParseTarget("backend=dns:///nope")
	if err == nil || !strings.HasPrefix(err.Error(), `target "backend": spec "dns:///nope"`) {
		t.Errorf("error %q does not name the target and spec first", err)
	}
}
