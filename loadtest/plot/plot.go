// Package plot draws a load run over time: the achieved rate, the latency
// quantiles and each pod's share of the calls, one panel each, in one PNG.
package plot

import (
	"fmt"
	"image/color"
	"io"
	"maps"
	"os"
	"slices"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"

	"github.com/knowingnode/knowingnode/internal/load/engine"
)

// WritePNG draws the windows of a run to file. With backends, a fourth panel
// shows the backend pods' share of the backend calls (a frontend tier run).
func WritePNG(file string, windows []*engine.Stats, sum *engine.Stats, backends bool) error {
	panels, err := runPanels(windows, sum, backends, 1)
	if err != nil {
		return err
	}
	return render(file, panels)
}

// runPanels draws rate, latency and the pods' shares of a run whose points
// each stand for span windows.
func runPanels(windows []*engine.Stats, sum *engine.Stats, backends bool, span int) ([]*plot.Plot, error) {
	rp, err := ratePanel(windows, sum)
	if err != nil {
		return nil, err
	}
	lp, err := latencyPanel(windows, span)
	if err != nil {
		return nil, err
	}
	panels := []*plot.Plot{rp, lp}
	title := "calls by pod"
	if backends {
		title = "calls by answering pod (frontend)"
	}
	sp, err := sharePanel(title, windows, func(w *engine.Stats) map[string]int64 { return w.ByPod })
	if err != nil {
		return nil, err
	}
	panels = append(panels, sp)
	if backends {
		bp, err := sharePanel("backend calls by backend pod", windows, func(w *engine.Stats) map[string]int64 { return w.BackendByPod })
		if err != nil {
			return nil, err
		}
		panels = append(panels, bp)
	}
	if hasLoad(windows) {
		lp, err := loadPanel(windows)
		if err != nil {
			return nil, err
		}
		panels = append(panels, lp)
	}
	return panels, nil
}

// render stacks the panels in one PNG file.
func render(file string, panels []*plot.Plot) error {
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	if err := renderTo(f, panels); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", file, err)
	}
	return f.Close()
}

// renderTo stacks the panels in one PNG written to w.
func renderTo(w io.Writer, panels []*plot.Plot) error {
	const width, panelHeight = 20 * vg.Centimeter, 8 * vg.Centimeter
	img := vgimg.New(width, panelHeight*vg.Length(len(panels)))
	dc := draw.New(img)
	rows := make([][]*plot.Plot, len(panels))
	for i, p := range panels {
		rows[i] = []*plot.Plot{p}
	}
	canvases := plot.Align(rows, draw.Tiles{Rows: len(panels), Cols: 1, PadTop: vg.Centimeter / 4, PadBottom: vg.Centimeter / 4, PadX: vg.Centimeter / 2, PadY: vg.Centimeter / 2}, dc)
	for i, p := range panels {
		p.Draw(canvases[i][0])
	}
	_, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(w)
	return err
}

func newPanel(title, y string) *plot.Plot {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = "time (s)"
	p.Y.Label.Text = y
	p.Y.Min = 0
	p.Legend.Top = true
	p.Add(plotter.NewGrid())
	return p
}

func addLine(p *plot.Plot, name string, i int, xys plotter.XYs) error {
	l, err := plotter.NewLine(xys)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	l.Color = plotutil.Color(i)
	l.Width = vg.Points(1.5)
	p.Add(l)
	p.Legend.Add(name, l)
	return nil
}

func series(windows []*engine.Stats, f func(*engine.Stats) float64) plotter.XYs {
	xys := make(plotter.XYs, len(windows))
	for i, w := range windows {
		xys[i] = plotter.XY{X: w.Elapsed.Seconds(), Y: f(w)}
	}
	return xys
}

func ratePanel(windows []*engine.Stats, sum *engine.Stats) (*plot.Plot, error) {
	p := newPanel("rate", "calls/s")
	if err := addLine(p, "sent", 0, series(windows, func(w *engine.Stats) float64 { return w.Rate })); err != nil {
		return nil, err
	}
	if err := addLine(p, "failed", 1, series(windows, func(w *engine.Stats) float64 { return float64(w.Failed) / w.Length.Seconds() })); err != nil {
		return nil, err
	}
	if sum.RequestedRate > 0 {
		if err := addLine(p, "asked", 2, series(windows, func(*engine.Stats) float64 { return sum.RequestedRate })); err != nil {
			return nil, err
		}
	}
	return p, nil
}

func latencyPanel(windows []*engine.Stats, span int) (*plot.Plot, error) {
	title := "latency of the calls made (from the intended send time)"
	if span > 1 {
		title += fmt.Sprintf("; each point the highest of %d windows", span)
	}
	p := newPanel(title, "ms")
	for i, q := range []struct {
		name string
		f    func(engine.Latency) float64
	}{
		{"p50", func(l engine.Latency) float64 { return ms(l.P50) }},
		{"p90", func(l engine.Latency) float64 { return ms(l.P90) }},
		{"p99", func(l engine.Latency) float64 { return ms(l.P99) }},
	} {
		if err := addLine(p, q.name, i, series(windows, func(w *engine.Stats) float64 { return q.f(w.Latency) })); err != nil {
			return nil, err
		}
	}
	return p, nil
}

func ms[D ~int64](d D) float64 { return float64(d) / 1e6 }

// sharePanel draws each pod's share of a window's successful calls; a pod
// that vanishes drops to 0, one that appears rises from 0.
func sharePanel(title string, windows []*engine.Stats, by func(*engine.Stats) map[string]int64) (*plot.Plot, error) {
	p := newPanel(title, "share (%)")
	p.Y.Max = 100
	pods := map[string]bool{}
	for _, w := range windows {
		for pod := range by(w) {
			pods[pod] = true
		}
	}
	for i, pod := range slices.Sorted(maps.Keys(pods)) {
		xys := series(windows, func(w *engine.Stats) float64 {
			var total int64
			for _, n := range by(w) {
				total += n
			}
			if total == 0 {
				return 0
			}
			return 100 * float64(by(w)[pod]) / float64(total)
		})
		if err := addLine(p, pod, i, xys); err != nil {
			return nil, err
		}
	}
	if len(pods) == 0 {
		p.Add(plotter.NewFunction(func(float64) float64 { return 0 }))
		p.Legend.Add("no pod answered", &plotter.Function{LineStyle: draw.LineStyle{Color: color.Gray{128}, Width: vg.Points(1)}})
	}
	return p, nil
}
