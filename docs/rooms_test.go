package docs

import (
	"maps"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// rank orders the top-level rooms: data flows proto → gen → internal →
// backend, frontend, loadtest → deploy. A room may import its own rank's
// packages only inside its own folder, and lower ranks.
var rank = map[string]int{"gen": 0, "internal": 1, "backend": 2, "frontend": 2, "loadtest": 2, "check": 2, "docs": 2, "tools": 2, "deploy": 3, "harness": 3}

// TestRoomsImportDownward fails when a product package imports a room above
// it or a sibling tier (frontend ↔ loadtest, say), or when product code
// imports the test harness.
func TestRoomsImportDownward(t *testing.T) {
	const mod = "github.com/knowingnode/knowingnode/"
	out, err := exec.Command("go", "list", "-f", `{{.ImportPath}} {{join .Imports " "}}`, mod+"...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	edges := 0
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		fields := strings.Fields(line)
		from := strings.TrimPrefix(fields[0], mod)
		fromRoom, _, _ := strings.Cut(from, "/")
		for _, imp := range fields[1:] {
			to, ok := strings.CutPrefix(imp, mod)
			if !ok {
				continue
			}
			edges++
			toRoom, _, _ := strings.Cut(to, "/")
			switch {
			case toRoom == "harness":
				if fromRoom != "harness" && fromRoom != "deploy" {
					t.Errorf("%s imports the test harness %s outside a test", from, to)
				}
			case fromRoom == toRoom:
			case rank[toRoom] >= rank[fromRoom]:
				t.Errorf("%s (%s, rank %d) imports %s (%s, rank %d): a room imports only rooms below it", from, fromRoom, rank[fromRoom], to, toRoom, rank[toRoom])
			}
		}
	}
	t.Logf("%d imports between the project's packages checked", edges)
}

// TestEveryRoomHasREADME fails when a room has no README. A room is a
// directory holding a non-test .go file that git tracks, except under gen/
// (generated) and deploy/e2e/ (the cluster suites' own harness) and testdata.
// The rule: the directory has a README.md, or its parent's README.md names it
// in a code span (`poll` or `poll/`), as harness/README.md names its rooms.
func TestEveryRoomHasREADME(t *testing.T) {
	cmd := exec.Command("git", "ls-files", "--", "*.go")
	cmd.Dir = ".."
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("git ls-files: %v", err)
	}
	rooms := map[string]bool{}
	for _, f := range strings.Fields(string(out)) {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		dir := path.Dir(f)
		if dir == "gen" || strings.HasPrefix(dir, "gen/") || strings.HasPrefix(dir, "deploy/e2e/") || dir == "deploy/e2e" ||
			slices.Contains(strings.Split(dir, "/"), "testdata") {
			continue
		}
		rooms[dir] = true
	}
	if len(rooms) < 10 {
		t.Fatalf("found only %d rooms in git ls-files", len(rooms))
	}
	var missing []string
	for _, dir := range slices.Sorted(maps.Keys(rooms)) {
		if _, err := os.Stat(filepath.Join("..", dir, "README.md")); err == nil {
			continue
		}
		if dir != "." {
			parent, err := os.ReadFile(filepath.Join("..", path.Dir(dir), "README.md"))
			name := path.Base(dir)
			if err == nil && (strings.Contains(string(parent), "`"+name+"`") || strings.Contains(string(parent), "`"+name+"/`")) {
				continue
			}
		}
		missing = append(missing, dir)
	}
	if len(missing) > 0 {
		t.Errorf("%d rooms without a README.md (nor a parent README naming them in `backquotes`): %s",
			len(missing), strings.Join(missing, ", "))
	}
	t.Logf("%d rooms checked", len(rooms))
}
