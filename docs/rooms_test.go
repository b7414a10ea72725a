package docs

import (
	"os/exec"
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
