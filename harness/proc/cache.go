package proc

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"
)

// buildFlags are those of every test binary: static, paths trimmed.
var buildFlags = []string{"-trimpath"}

// buildEnv is the environment build adds to the test's own.
var buildEnv = []string{"CGO_ENABLED=0"}

// CacheEnv names a directory for the built binaries; default
// <user cache dir>/knowingnode-test-bin.
const CacheEnv = "KNOWINGNODE_TEST_BIN_CACHE"

// keepUnused is how long a binary nobody asked for stays in the cache. A
// hit renews it, so a test still running an old build never loses it.
const keepUnused = 2 * time.Hour

// cached returns the path of pkg's binary built from the sources as they are
// now, building it only when no test process built exactly that before: the
// key hashes the Go version and environment, the build flags, the module
// version of every dependency from the module cache (immutable), and the
// content of every file of every other dependency (this module's packages,
// local replacements). Concurrent test processes build each key once: the
// first holds the key's lock while it builds, into a temporary name renamed
// into place.
func cached(pkgs []string) (map[string]string, error) {
	keys, err := buildKeys(pkgs)
	if err != nil {
		return nil, err
	}
	root := os.Getenv(CacheEnv)
	if root == "" {
		if root, err = os.UserCacheDir(); err != nil {
			root = os.TempDir()
		}
		root = filepath.Join(root, "knowingnode-test-bin")
	}
	if err := os.MkdirAll(root, 0o755); err != nil {
		return nil, fmt.Errorf("test binary cache: %w", err)
	}
	out := map[string]string{}
	for _, k := range keys {
		p, err := cachedOne(root, k)
		if err != nil {
			return nil, err
		}
		out[k.name] = p
	}
	return out, nil
}

type buildKey struct {
	pkg, name, sum string
}

func cachedOne(root string, k buildKey) (string, error) {
	final := filepath.Join(root, k.name+"-"+k.sum)
	lock, err := os.OpenFile(final+".lock", os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return "", fmt.Errorf("test binary cache: %w", err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return "", fmt.Errorf("test binary cache: lock %s: %w", lock.Name(), err)
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)
	now := time.Now()
	if os.Chtimes(final, now, now) == nil {
		return final, nil // built before, by this process or another
	}
	tmp, err := os.MkdirTemp(root, "build-")
	if err != nil {
		return "", fmt.Errorf("test binary cache: %w", err)
	}
	defer os.RemoveAll(tmp)
	if err := goBuild(tmp, k.pkg); err != nil {
		return "", err
	}
	if err := os.Rename(filepath.Join(tmp, k.name), final); err != nil {
		return "", fmt.Errorf("test binary cache: %w", err)
	}
	prune(root, k.name, final)
	return final, nil
}

// prune removes the binaries of name that no test asked for lately.
func prune(root, name, keep string) {
	old, _ := filepath.Glob(filepath.Join(root, name+"-*"))
	for _, p := range old {
		if p == keep || strings.HasSuffix(p, ".lock") {
			continue
		}
		if fi, err := os.Stat(p); err == nil && time.Since(fi.ModTime()) > keepUnused {
			os.Remove(p)
			os.Remove(p + ".lock")
		}
	}
}

func goBuild(dir string, pkgs ...string) error {
	args := append(append([]string{"build"}, buildFlags...), "-o", dir+string(filepath.Separator))
	cmd := exec.Command("go", append(args, pkgs...)...)
	cmd.Env = append(os.Environ(), buildEnv...)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s: %v\n%s", strings.Join(pkgs, " "), err, out)
	}
	return nil
}

// listed is one package as buildKeys reads it from go list.
type listed struct {
	importPath string
	module     string // path@version, for a dependency from the module cache
	dir        string
	files      []string
}

// buildKeys hashes, for each of pkgs, what its binary is built from.
func buildKeys(pkgs []string) ([]buildKey, error) {
	goEnv, err := goOutput("env", "GOVERSION", "GOROOT", "GOFLAGS", "GOOS", "GOARCH", "GOAMD64", "GOEXPERIMENT", "GOMODCACHE")
	if err != nil {
		return nil, err
	}
	modcache := strings.TrimSpace(goEnv[strings.LastIndexByte(strings.TrimSpace(goEnv), '\n')+1:]) + string(filepath.Separator)
	// Each package's dependencies, then every dependency's files.
	roots, err := goOutput(append([]string{"list", "-f", "{{.ImportPath}} {{.Name}}{{range .Deps}} {{.}}{{end}}"}, pkgs...)...)
	if err != nil {
		return nil, err
	}
	const fileList = "{{range .GoFiles}}|{{.}}{{end}}{{range .CgoFiles}}|{{.}}{{end}}{{range .SFiles}}|{{.}}{{end}}{{range .EmbedFiles}}|{{.}}{{end}}{{range .SysoFiles}}|{{.}}{{end}}"
	all, err := goOutput(append([]string{"list", "-deps", "-f",
		"{{if not .Standard}}{{.ImportPath}}\t{{with .Module}}{{.Path}}@{{.Version}}{{end}}\t{{.Dir}}\t" + fileList + "{{end}}"}, pkgs...)...)
	if err != nil {
		return nil, err
	}
	byPath := map[string]listed{}
	for line := range strings.Lines(all) {
		f := strings.Split(strings.TrimRight(line, "\n"), "\t")
		if len(f) != 4 {
			continue // a standard package: an empty line
		}
		byPath[f[0]] = listed{importPath: f[0], module: f[1], dir: f[2], files: strings.Split(strings.TrimPrefix(f[3], "|"), "|")}
	}
	var keys []buildKey
	sc := bufio.NewScanner(strings.NewReader(roots))
	sc.Buffer(nil, 1<<24)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 2 || f[1] != "main" {
			return nil, fmt.Errorf("build %s: not a main package", f[0])
		}
		h := sha256.New()
		fmt.Fprintf(h, "%s\n%q %q\n", goEnv, buildFlags, buildEnv)
		deps := append([]string{f[0]}, f[2:]...)
		slices.Sort(deps)
		for _, d := range deps {
			p, ok := byPath[d]
			if !ok {
				continue // standard library: the Go version says it all
			}
			if p.module != "" && strings.HasPrefix(p.dir, modcache) {
				fmt.Fprintf(h, "%s %s\n", d, p.module)
				continue
			}
			fmt.Fprintf(h, "%s\n", d)
			for _, name := range p.files {
				if name == "" {
					continue
				}
				if err := hashFile(h, filepath.Join(p.dir, name)); err != nil {
					return nil, err
				}
			}
		}
		keys = append(keys, buildKey{pkg: f[0], name: path.Base(f[0]), sum: hex.EncodeToString(h.Sum(nil))[:24]})
	}
	return keys, nil
}

func hashFile(h io.Writer, name string) error {
	f, err := os.Open(name)
	if err != nil {
		return fmt.Errorf("test binary cache: %w", err)
	}
	defer f.Close()
	fmt.Fprintf(h, "%s ", filepath.Base(name))
	_, err = io.Copy(h, f)
	return err
}

func goOutput(args ...string) (string, error) {
	cmd := exec.Command("go", args...)
	cmd.Env = append(os.Environ(), buildEnv...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("go %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return string(out), nil
}
