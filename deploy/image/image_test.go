package main

import (
	"archive/tar"
	"bytes"
	"debug/elf"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/linter"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
)

// buildBinaries builds the project's real backend and frontend, statically,
// the way the image expects them.
func buildBinaries(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	cmd := exec.Command("go", "build", "-trimpath", "-o", dir+"/", "./backend", "./frontend", "./check", "./loadtest/cmd/load")
	cmd.Dir = "../.."
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOWORK=off")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./backend ./frontend ./check ./loadtest/cmd/load: %v\n%s", err, out)
	}
	return dir
}

func TestImage(t *testing.T) {
	bin := buildBinaries(t)
	out := filepath.Join(t.TempDir(), "knowingnode.tar")
	oci := filepath.Join(t.TempDir(), "oci")
	digest, err := run(bin, "knowingnode:test", out, oci, runtime.GOARCH, "v9.9.9", "abc123")
	if err != nil {
		t.Fatal(err)
	}

	tag, _ := name.NewTag("knowingnode:test")
	img, err := tarball.ImageFromPath(out, &tag)
	if err != nil {
		t.Fatalf("read back %s: %v", out, err)
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	c := cfg.Config
	if c.User != "65532:65532" {
		t.Errorf("User = %q, want 65532:65532 (non-root, numeric for runAsNonRoot)", c.User)
	}
	if !slices.Equal(c.Entrypoint, []string{"/usr/local/bin/backend"}) {
		t.Errorf("Entrypoint = %q", c.Entrypoint)
	}
	if len(c.Cmd) != 0 {
		t.Errorf("Cmd = %q, want none", c.Cmd)
	}
	if cfg.OS != "linux" || cfg.Architecture != runtime.GOARCH {
		t.Errorf("platform = %s/%s", cfg.OS, cfg.Architecture)
	}
	for k, v := range map[string]string{
		"org.opencontainers.image.title":    "knowingnode",
		"org.opencontainers.image.version":  "v9.9.9",
		"org.opencontainers.image.revision": "abc123",
		"org.opencontainers.image.source":   "https://github.com/knowingnode/knowingnode",
	} {
		if c.Labels[k] != v {
			t.Errorf("label %s = %q, want %q", k, c.Labels[k], v)
		}
	}

	layers, err := img.Layers()
	if err != nil || len(layers) != 1 {
		t.Fatalf("layers = %d, %v; want exactly one", len(layers), err)
	}
	files := extract(t, layers[0])
	// No shell, nothing but the binaries and the passwd/group files.
	var names []string
	for n := range files {
		names = append(names, n)
	}
	slices.Sort(names)
	want := []string{"etc/group", "etc/passwd", "usr/local/bin/backend", "usr/local/bin/check", "usr/local/bin/frontend", "usr/local/bin/load"}
	if !slices.Equal(names, want) {
		t.Errorf("regular files = %q, want %q", names, want)
	}

	// Both binaries are static and run: -h prints their own usage.
	for _, b := range []string{"backend", "frontend", "check", "load"} {
		f := files["usr/local/bin/"+b]
		if f.mode != 0o755 || f.uid != 0 {
			t.Errorf("%s: mode %o uid %d, want 0755 root-owned", b, f.mode, f.uid)
		}
		p := filepath.Join(t.TempDir(), b)
		if err := os.WriteFile(p, f.body, 0o755); err != nil {
			t.Fatal(err)
		}
		assertStatic(t, p)
		var stdout bytes.Buffer
		cmd := exec.Command(p, "-h")
		cmd.Stdout = &stdout
		if err := cmd.Run(); err != nil {
			t.Errorf("%s -h: %v", b, err)
		}
		if !strings.Contains(stdout.String(), "Usage of "+b) {
			t.Errorf("%s -h printed %q, want its usage", b, stdout.String())
		}
	}

	// The docker-archive names the tag, so `ctr images import` tags it.
	if tags := repoTags(t, out); !slices.Equal(tags, []string{"knowingnode:test"}) {
		t.Errorf("RepoTags = %q", tags)
	}

	// The OCI layout holds the same image under the tag.
	idx, err := layout.ImageIndexFromPath(oci)
	if err != nil {
		t.Fatalf("OCI layout: %v", err)
	}
	im, err := idx.IndexManifest()
	if err != nil || len(im.Manifests) != 1 {
		t.Fatalf("OCI index: %v, %d manifests", err, len(im.Manifests))
	}
	e := im.Manifests[0]
	if e.Digest != digest || e.MediaType != types.OCIManifestSchema1 || e.Annotations["org.opencontainers.image.ref.name"] != "test" {
		t.Errorf("OCI index entry %+v, want an OCI manifest %s tagged test", e, digest)
	}
	// A docker-archive keeps config and layers but not the manifest, so the
	// two are compared by their config digest.
	ociImg, err := idx.Image(digest)
	if err != nil {
		t.Fatal(err)
	}
	c1, _ := img.ConfigName()
	c2, _ := ociImg.ConfigName()
	if c1 != c2 {
		t.Errorf("docker-archive config %s != OCI layout config %s", c1, c2)
	}

	// Reproducible: the same binaries give the same digest.
	again, err := run(bin, "knowingnode:test", filepath.Join(t.TempDir(), "again.tar"), "", runtime.GOARCH, "v9.9.9", "abc123")
	if err != nil {
		t.Fatal(err)
	}
	if again != digest {
		t.Errorf("rebuild digest %s != %s", again, digest)
	}
}

func TestImageErrors(t *testing.T) {
	dir := t.TempDir()
	cases := []struct {
		name, bin, tag, want string
	}{
		{"missing binaries", dir, "knowingnode:x", "binary backend"},
		{"bad tag", dir, "Not A Tag", `tag "Not A Tag"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := run(c.bin, c.tag, filepath.Join(dir, "x.tar"), "", "amd64", "v", "")
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want it to mention %q", err, c.want)
			}
		})
	}
	if _, err := Build(Spec{Binaries: map[string]string{"frontend": "x"}}); err == nil || !strings.Contains(err.Error(), "entrypoint") {
		t.Fatalf("Build without the backend: err = %v", err)
	}
}

type tarFile struct {
	mode     int64
	uid      int
	body     []byte
	typeflag byte
}

func extract(t *testing.T, l interface {
	Uncompressed() (io.ReadCloser, error)
}) map[string]tarFile {
	t.Helper()
	rc, err := l.Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	files := map[string]tarFile{}
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Typeflag != tar.TypeReg {
			continue
		}
		body, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		files[h.Name] = tarFile{mode: h.Mode, uid: h.Uid, body: body, typeflag: h.Typeflag}
	}
	return files
}

// assertStatic fails when the binary asks for a dynamic loader: the image has
// no libc to load.
func assertStatic(t *testing.T, p string) {
	t.Helper()
	f, err := elf.Open(p)
	if err != nil {
		t.Fatalf("%s: %v", p, err)
	}
	defer f.Close()
	for _, prog := range f.Progs {
		if prog.Type == elf.PT_INTERP {
			t.Errorf("%s is dynamically linked (has PT_INTERP)", p)
		}
	}
}

func repoTags(t *testing.T, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err != nil {
			t.Fatalf("manifest.json not found in %s: %v", path, err)
		}
		if h.Name != "manifest.json" {
			continue
		}
		var m []struct{ RepoTags []string }
		if err := json.NewDecoder(tr).Decode(&m); err != nil || len(m) != 1 {
			t.Fatalf("manifest.json: %v (%d entries)", err, len(m))
		}
		return m[0].RepoTags
	}
}

// TestDockerfileAgrees parses deploy/Dockerfile (which cannot be built here:
// no Docker engine) with BuildKit's own parser and linter, and checks that
// its final stage says what this builder does.
func TestDockerfileAgrees(t *testing.T) {
	f, err := os.Open("../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	res, err := parser.Parse(f)
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	for _, w := range res.Warnings {
		t.Errorf("parser warning: %s", w.Short)
	}
	lint := linter.New(&linter.Config{Warn: func(rule, desc, url, msg string, loc []parser.Range) {
		t.Errorf("lint %s: %s (line %v)", rule, msg, loc)
	}})
	stages, _, err := instructions.Parse(res.AST, lint)
	if err != nil {
		t.Fatalf("instructions: %v", err)
	}
	if len(stages) != 2 {
		t.Fatalf("%d stages, want a build stage and the final one", len(stages))
	}
	build, final := stages[0], stages[1]

	var buildCmds []string
	for _, c := range build.Commands {
		if r, ok := c.(*instructions.RunCommand); ok {
			buildCmds = append(buildCmds, strings.Join(r.CmdLine, " "))
		}
	}
	if all := strings.Join(buildCmds, "\n"); !strings.Contains(all, "CGO_ENABLED=0") || !strings.Contains(all, "./backend ./frontend ./check ./loadtest/cmd/load") {
		t.Errorf("the build stage does not build ./backend ./frontend statically:\n%s", all)
	}

	if final.BaseName != "scratch" {
		t.Errorf("final stage FROM %s, want scratch (no shell, no libc)", final.BaseName)
	}
	var (
		user, entrypoint []string
		labels           = map[string]bool{}
		exposed          []string
		binsCopied       bool
	)
	for _, c := range final.Commands {
		switch c := c.(type) {
		case *instructions.RunCommand:
			t.Errorf("final stage has %q, but the image has no shell", c.String())
		case *instructions.UserCommand:
			user = append(user, c.User)
		case *instructions.EntrypointCommand:
			if c.PrependShell {
				t.Errorf("ENTRYPOINT in shell form needs a shell")
			}
			entrypoint = c.CmdLine
		case *instructions.LabelCommand:
			for _, kv := range c.Labels {
				labels[kv.Key] = true
			}
		case *instructions.ExposeCommand:
			exposed = append(exposed, c.Ports...)
		case *instructions.CopyCommand:
			if c.From == build.Name && c.DestPath == BinDir+"/" && c.Chmod == "0755" &&
				slices.Equal(c.SourcePaths, []string{"/out/backend", "/out/frontend", "/out/check", "/out/load"}) {
				binsCopied = true
			}
		}
	}
	if !slices.Equal(user, []string{User}) {
		t.Errorf("USER %q, want %s", user, User)
	}
	if !slices.Equal(entrypoint, []string{Entrypoint}) {
		t.Errorf("ENTRYPOINT %q, want [%s]", entrypoint, Entrypoint)
	}
	for k := range Labels("v", "r") {
		if !labels[k] {
			t.Errorf("LABEL %s missing", k)
		}
	}
	if want := []string{"8080/tcp", "9090/tcp", "9091/tcp"}; !slices.Equal(exposed, want) {
		t.Errorf("EXPOSE %q, want %q", exposed, want)
	}
	if !binsCopied {
		t.Errorf("no COPY --from=%s --chmod=0755 /out/backend /out/frontend %s/", build.Name, BinDir)
	}
}
