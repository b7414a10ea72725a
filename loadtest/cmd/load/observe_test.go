package main

import (
	"strings"
	"testing"
)

func TestObserveFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string // "" for valid
	}{
		{[]string{"--target", "x:1", "--report", "run.html", "--hpa", "backend,ns/frontend", "--metrics-addr", ":0"}, ""},
		{[]string{"--target", "x:1", "--report", "run.png"}, "--report"},
		{[]string{"--target", "x:1", "--hpa", "a,b,c,d,e,f,g,h,i,j,k"}, "at most 10"},
		{[]string{"--target", "kubernetes:///web.ns:grpc", "--refresh", "2s"}, ""},
	} {
		o, err := parseFlags(tc.args)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%v: %v", tc.args, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%v: err %v; want one naming %s", tc.args, err, tc.want)
		case err == nil && tc.args[3] == "run.html" && (o.obs.report != "run.html" || len(o.obs.hpaNames()) != 2):
			t.Errorf("%v: parsed %+v", tc.args, o.obs)
		}
	}
}

func TestDefaultNamespace(t *testing.T) {
	if ns := defaultNamespace("kubernetes:///web.shop:grpc"); ns != "shop" {
		t.Errorf("namespace of a kubernetes:/// target: %q, want shop", ns)
	}
}
