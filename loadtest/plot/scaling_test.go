package plot

import (
	"image/png"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/knowingnode/knowingnode/internal/load/engine"
)

func TestWriteScalingPNG(t *testing.T) {
	t0 := time.Date(2026, 11, 30, 5, 0, 0, 0, time.UTC)
	var windows []*engine.Stats
	for i := range 20 {
		windows = append(windows, &engine.Stats{
			Start: t0.Add(time.Duration(i) * time.Second), Elapsed: time.Duration(i+1) * time.Second, Length: time.Second,
			Sent: 100, OK: 100, Rate: 100, ByPod: map[string]int64{"a": 50, "b": 50},
		})
	}
	sc := Scaling{
		Replicas: []Replicas{{Tier: "backend", Points: []Count{{t0, 2}, {t0.Add(5 * time.Second), 4}, {t0.Add(30 * time.Second), 2}}}},
		Events:   []Event{{t0.Add(5 * time.Second), "HPA: 4"}, {t0.Add(30 * time.Second), "HPA: 2"}},
	}
	for _, tc := range []struct {
		name    string
		windows []*engine.Stats
		backend bool
		panels  int // 0: an error
	}{
		{"identity", windows, false, 4},
		{"fanout", windows, true, 5},
		{"no windows", nil, false, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			file := filepath.Join(t.TempDir(), "run.png")
			err := WriteScalingPNG(file, tc.windows, &engine.Stats{Rate: 100}, tc.backend, sc)
			if tc.panels == 0 {
				if err == nil {
					t.Fatal("no error for a run without windows")
				}
				return
			}
			if err != nil {
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
			// 8 cm per panel at the default 96 dpi.
			if want := tc.panels * 302; img.Bounds().Dy() < want-tc.panels || img.Bounds().Dy() > want+tc.panels {
				t.Errorf("image %v, want %d panels (%d px high)", img.Bounds(), tc.panels, want)
			}
		})
	}
}
