package identity

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/knowingnode/knowingnode/internal/config"
)

func TestAnnotationsWithheld(t *testing.T) {
	annotations := map[string]string{
		"kubectl.kubernetes.io/last-applied-configuration": `{"env":[{"name":"DB_PASSWORD","value":"hunter2"}]}`,
		"example.com/DB-Password":                          "hunter2",
		"vault.hashicorp.com/agent-inject-token":           "s.abc",
		"example.com/api-key":                              "k",
		"example.com/oauth-client":                         "c",
		"kubernetes.io/config.source":                      "api",
		"deployment.kubernetes.io/revision":                "3",
		"team":                                             "search",
	}
	public := []string{"deployment.kubernetes.io/revision", "kubernetes.io/config.source", "team"}
	all := slices.Sorted(func(yield func(string) bool) {
		for k := range annotations {
			if !yield(k) {
				return
			}
		}
	})
	for _, c := range []struct {
		name  string
		args  []string // flags; nil: Load's default, no filter given
		shown []string
	}{
		{"default", nil, public},
		{"flag defaults", []string{}, public},
		{"allow one back", []string{"--annotations-allow", "example.com/api-key"}, append([]string{"example.com/api-key"}, public...)},
		{"allow all", []string{"--annotations-allow", "*"}, all},
		{"deny replaced", []string{"--annotations-deny", "team, *revision"}, []string{
			"example.com/DB-Password", "example.com/api-key", "example.com/oauth-client",
			"kubectl.kubernetes.io/last-applied-configuration", "kubernetes.io/config.source", "vault.hashicorp.com/agent-inject-token"}},
		{"deny nothing", []string{"--annotations-deny", ""}, all},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, FileAnnotations), []byte(kubeletFormat(annotations)), 0o644); err != nil {
				t.Fatal(err)
			}
			var filter *AnnotationFilter
			if c.args != nil {
				filter = &AnnotationFilter{}
				s := config.New("test")
				filter.Register(s)
				if err := s.Parse(c.args, func(string) string { return "" }); err != nil {
					t.Fatal(err)
				}
				if err := filter.Validate(); err != nil {
					t.Fatal(err)
				}
			}
			var logs logRecords
			id := Load(Options{Getenv: envOf(nil), DownwardDir: dir, Machine: fakeMachine{host: "h"}, Logger: logs.logger(), Annotations: filter})
			var shown []string
			for k := range id.Annotations {
				shown = append(shown, k)
			}
			slices.Sort(shown)
			slices.Sort(c.shown)
			if !slices.Equal(shown, c.shown) {
				t.Errorf("revealed %q\nwant     %q", shown, c.shown)
			}
			// The log names what was withheld, never a value.
			if strings.Contains(logs.buf.String(), "hunter2") {
				t.Errorf("a withheld value was logged: %s", logs.buf.String())
			}
			if n := len(annotations) - len(shown); n > 0 && strings.Count(logs.buf.String(), "annotations withheld") != 1 {
				t.Errorf("%d annotations withheld without one log line saying so: %s", n, logs.buf.String())
			}
		})
	}
}

func TestAnnotationFilterFlags(t *testing.T) {
	for _, c := range []struct {
		args []string
		env  map[string]string
		ok   bool
	}{
		{[]string{"--annotations-allow", strings.Repeat("x", 318)}, nil, false},
		{[]string{"--annotations-deny", strings.Repeat("a,", 101)}, nil, false},
		{nil, map[string]string{"ANNOTATIONS_DENY": "*secret*,*token*"}, true},
	} {
		var f AnnotationFilter
		s := config.New("test")
		f.Register(s)
		err := s.Parse(c.args, func(k string) string { return c.env[k] })
		if err == nil {
			err = f.Validate()
		}
		if (err == nil) != c.ok {
			t.Errorf("%v %v: %v", c.args, c.env, err)
		}
		if !c.ok && !strings.Contains(err.Error(), "at most") {
			t.Errorf("%v: %v does not state the limit", c.args, err)
		}
	}
}

func TestGlob(t *testing.T) {
	for _, c := range []struct {
		pattern, s string
		want       bool
	}{
		{"*token*", "vault.hashicorp.com/agent-inject-token", true},
		{"*token*", "token", true},
		{"a*b*c", "abc", true},
		{"a*b*c", "acb", false},
		{"a*a", "a", false},
		{"*", "", true},
		{"x", "x", true},
		{"x", "xy", false},
		{"kubectl.kubernetes.io/last-applied-configuration", "kubectl.kubernetes.io/last-applied-configuration", true},
	} {
		if got := glob(c.pattern, c.s); got != c.want {
			t.Errorf("glob(%q, %q) = %v", c.pattern, c.s, got)
		}
	}
}
