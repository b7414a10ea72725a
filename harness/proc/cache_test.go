package proc

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// TestBuildCache: a binary is linked once per content and shared by every
// Build (from concurrent callers too); a change of its source, or of a
// package it imports, makes a new one.
func TestBuildCache(t *testing.T) {
	mod := t.TempDir()
	write := func(name, text string) {
		t.Helper()
		p := filepath.Join(mod, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("go.mod", "module example.com/m\n\ngo 1.26\n")
	write("hello/main.go", "package main\n\nimport \"example.com/m/word\"\n\nfunc main() { println(word.W) }\n")
	write("word/word.go", "package word\n\nconst W = \"one\"\n")
	t.Chdir(mod)
	cache := t.TempDir()
	t.Setenv(CacheEnv, cache)

	target := func(dir string) string {
		t.Helper()
		p, err := os.Readlink(filepath.Join(dir, "hello"))
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	run := func(dir string) string {
		t.Helper()
		out, err := exec.Command(filepath.Join(dir, "hello")).CombinedOutput()
		if err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		return strings.TrimSpace(string(out))
	}
	built := func() int {
		bins, _ := filepath.Glob(filepath.Join(cache, "hello-*"))
		n := 0
		for _, b := range bins {
			if !strings.HasSuffix(b, ".lock") {
				n++
			}
		}
		return n
	}

	// Four concurrent builds of the same sources (as four test processes
	// would ask): one link, one binary.
	paths := make([]string, 4)
	errs := make([]error, 4)
	var wg sync.WaitGroup
	for i := range paths {
		wg.Go(func() {
			bins, err := cached([]string{"./hello"})
			paths[i], errs[i] = bins["hello"], err
		})
	}
	wg.Wait()
	for i := range paths {
		if errs[i] != nil || paths[i] != paths[0] {
			t.Fatalf("concurrent builds: %v, %v; want one binary", paths, errs)
		}
	}
	dirs := []string{Build(t, "./hello")}
	if target(dirs[0]) != paths[0] {
		t.Errorf("Build after the concurrent builds links %s, want %s", target(dirs[0]), paths[0])
	}
	if n := built(); n != 1 {
		t.Errorf("%d binaries cached after 4 builds of the same sources, want 1", n)
	}
	if got := run(dirs[0]); got != "one" {
		t.Errorf("binary says %q, want one", got)
	}

	// A dependency changes: a new binary.
	write("word/word.go", "package word\n\nconst W = \"two\"\n")
	changed := Build(t, "./hello")
	if target(changed) == target(dirs[0]) || run(changed) != "two" {
		t.Errorf("after a dependency changed: binary %s says %q; want a new one saying two", target(changed), run(changed))
	}
	// Back to the first content: the first binary again.
	write("word/word.go", "package word\n\nconst W = \"one\"\n")
	if again := Build(t, "./hello"); target(again) != target(dirs[0]) {
		t.Errorf("same sources as the first build: binary %s, want %s", target(again), target(dirs[0]))
	}
	if n := built(); n != 2 {
		t.Errorf("%d binaries cached, want 2 (one per content)", n)
	}
}
