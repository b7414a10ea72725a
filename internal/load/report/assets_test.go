package report

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"strings"
	"testing"
)

// The embedded uPlot is byte for byte the pinned npm release: each file's
// sha256 is listed in assets/uplot.pin, which fetch-uplot.sh (go generate)
// wrote from a tarball it checked against npm's integrity for that version.
func TestEmbeddedUPlotMatchesPin(t *testing.T) {
	if uplotVersion != "1.6.32" {
		t.Errorf("pinned uPlot %q, want 1.6.32", uplotVersion)
	}
	if !strings.HasPrefix(pinField("integrity"), "sha512-") {
		t.Errorf("uplot.pin has no sha512 integrity")
	}
	files := map[string][]byte{"uPlot.iife.min.js": uplotJS, "uPlot.min.css": uplotCSS}
	lic, err := os.ReadFile("assets/uPlot.LICENSE")
	if err != nil {
		t.Fatal(err)
	}
	files["uPlot.LICENSE"] = lic
	checked := 0
	for line := range strings.SplitSeq(uplotPin, "\n") {
		f := strings.Fields(line)
		if len(f) != 3 || f[0] != "sha256" {
			continue
		}
		b, ok := files[f[2]]
		if !ok {
			t.Errorf("uplot.pin lists %s, which is not embedded", f[2])
			continue
		}
		sum := sha256.Sum256(b)
		if got := hex.EncodeToString(sum[:]); got != f[1] {
			t.Errorf("%s: sha256 %s, pinned %s", f[2], got, f[1])
		}
		checked++
	}
	if checked != len(files) {
		t.Errorf("checked %d files against the pin, want %d", checked, len(files))
	}
}
