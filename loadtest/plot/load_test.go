package plot

import (
	"image/png"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/knowingnode/knowingnode/internal/load/engine"
)

// TestLoadPanel: windows with the pods' load reports get a fourth panel.
func TestLoadPanel(t *testing.T) {
	t0 := time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC)
	mk := func(load bool) []*engine.Stats {
		var windows []*engine.Stats
		for i := range 10 {
			w := &engine.Stats{Start: t0.Add(time.Duration(i) * time.Second), Elapsed: time.Duration(i+1) * time.Second, Length: time.Second,
				Sent: 100, OK: 100, Rate: 100, ByPod: map[string]int64{"a": 80, "b": 20}}
			if load {
				w.LoadByPod = map[string]*engine.PodLoad{
					"a": {Reports: 80, CPUUtilization: 0.1, QPS: 80, Weight: 800, WeightShare: 0.8},
					"b": {Reports: 20, CPUUtilization: 0.05, ApplicationUtilization: 0.8, QPS: 20, Weight: 25, WeightShare: 0.2},
				}
			}
			windows = append(windows, w)
		}
		return windows
	}
	for _, tc := range []struct {
		name   string
		load   bool
		panels int
	}{{"with reports", true, 4}, {"without", false, 3}} {
		t.Run(tc.name, func(t *testing.T) {
			file := filepath.Join(t.TempDir(), "run.png")
			if err := WritePNG(file, mk(tc.load), &engine.Stats{Rate: 100}, false); err != nil {
				t.Fatal(err)
			}
			f, err := os.Open(file)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			img, err := png.Decode(f)
			if err != nil {
				t.Fatal(err)
			}
			if want := tc.panels * 302; img.Bounds().Dy() < want-tc.panels || img.Bounds().Dy() > want+tc.panels {
				t.Errorf("image %v, want %d panels (%d px high)", img.Bounds(), tc.panels, want)
			}
		})
	}
}
