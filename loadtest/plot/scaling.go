package plot

import (
	"errors"
	"fmt"
	"image/color"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"

	"github.com/knowingnode/knowingnode/internal/load/engine"
)

// Replicas is one tier's ready pods over time, as an autoscaler moved them.
type Replicas struct {
	Tier   string
	Points []Count
}

// Count is a number of pods at a moment.
type Count struct {
	At time.Time
	N  int
}

// Event is a moment marked on every panel, e.g. "backend HPA: 4".
type Event struct {
	At    time.Time
	Label string
}

// Scaling is what happened to the tiers while a run loaded them.
type Scaling struct {
	Replicas []Replicas
	Events   []Event
}

// WriteScalingPNG draws a run as WritePNG does, under a first panel with each
// tier's replicas, and marks every event on every panel. The time axis is
// seconds since the run started; replicas and events may reach past its end
// (a scale-down after the load stopped).
func WriteScalingPNG(file string, windows []*engine.Stats, sum *engine.Stats, backends bool, sc Scaling) error {
	if len(windows) == 0 {
		return errors.New("plot: a run without windows")
	}
	// Elapsed is where a window ends in the run: the run began that long
	// before the first window's end.
	w0 := windows[0]
	t0 := w0.Start.Add(w0.Length - w0.Elapsed)
	x := func(t time.Time) float64 { return t.Sub(t0).Seconds() }

	rp := newPanel("ready pods per tier", "pods")
	for i, r := range sc.Replicas {
		// A step line: the count holds until the next point.
		var xys plotter.XYs
		for j, c := range r.Points {
			if j > 0 {
				xys = append(xys, plotter.XY{X: x(c.At), Y: float64(r.Points[j-1].N)})
			}
			xys = append(xys, plotter.XY{X: x(c.At), Y: float64(c.N)})
		}
		if len(xys) == 0 {
			continue
		}
		if err := addLine(rp, r.Tier, i, xys); err != nil {
			return err
		}
	}
	rest, err := runPanels(windows, sum, backends, 1)
	if err != nil {
		return err
	}
	panels := append([]*plot.Plot{rp}, rest...)

	// One time axis for all panels, so the marks line up.
	lo, hi := 0.0, windows[len(windows)-1].Elapsed.Seconds()
	for _, p := range panels {
		lo, hi = min(lo, p.X.Min), max(hi, p.X.Max)
	}
	for _, p := range panels {
		p.X.Min, p.X.Max = lo, hi
		if err := mark(p, sc.Events, x); err != nil {
			return err
		}
	}
	return render(file, panels)
}

// mark draws each event as a dashed vertical line across p, labelled at its
// top.
func mark(p *plot.Plot, events []Event, x func(time.Time) float64) error {
	top := p.Y.Max
	if top <= p.Y.Min {
		top = p.Y.Min + 1
	}
	var labels plotter.XYLabels
	for _, e := range events {
		l, err := plotter.NewLine(plotter.XYs{{X: x(e.At), Y: p.Y.Min}, {X: x(e.At), Y: top}})
		if err != nil {
			return fmt.Errorf("event %q: %w", e.Label, err)
		}
		l.Color = color.Gray{Y: 110}
		l.Dashes = []vg.Length{vg.Points(3), vg.Points(3)}
		p.Add(l)
		labels.XYs = append(labels.XYs, plotter.XY{X: x(e.At), Y: top})
		labels.Labels = append(labels.Labels, e.Label)
	}
	if len(events) == 0 {
		return nil
	}
	ls, err := plotter.NewLabels(labels)
	if err != nil {
		return err
	}
	for i := range ls.TextStyle {
		ls.TextStyle[i].Rotation = 1.5708 // vertical, along the mark
		ls.TextStyle[i].Font.Size = vg.Points(7)
	}
	p.Add(ls)
	return nil
}
