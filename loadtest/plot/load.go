package plot

import (
	"fmt"
	"maps"
	"slices"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"

	"github.com/knowingnode/knowingnode/internal/load/engine"
)

// hasLoad reports whether any window carries pods' load reports (ORCA).
func hasLoad(windows []*engine.Stats) bool {
	for _, w := range windows {
		if len(w.LoadByPod) > 0 {
			return true
		}
	}
	return false
}

// loadPanel draws, per pod, the utilization it reported with its calls
// (the application's when it claims one, else its CPU's; solid) and the
// share of the weights weighted_round_robin derives from its reports
// (dashed), in percent, to read beside the pods' shares of the calls.
func loadPanel(windows []*engine.Stats) (*plot.Plot, error) {
	p := newPanel("reported load: utilization (solid), WRR weight share (dashed)", "%")
	pods := map[string]bool{}
	for _, w := range windows {
		for pod := range w.LoadByPod {
			pods[pod] = true
		}
	}
	for i, pod := range slices.Sorted(maps.Keys(pods)) {
		util := series(windows, func(w *engine.Stats) float64 {
			l := w.LoadByPod[pod]
			switch {
			case l == nil:
				return 0
			case l.ApplicationUtilization > 0:
				return 100 * l.ApplicationUtilization
			}
			return 100 * l.CPUUtilization
		})
		weight := series(windows, func(w *engine.Stats) float64 {
			if l := w.LoadByPod[pod]; l != nil {
				return 100 * l.WeightShare
			}
			return 0
		})
		for _, s := range []struct {
			xys    plotter.XYs
			dashed bool
		}{{util, false}, {weight, true}} {
			l, err := plotter.NewLine(s.xys)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", pod, err)
			}
			l.Color = plotutil.Color(i)
			l.Width = vg.Points(1.5)
			if s.dashed {
				l.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
			} else {
				p.Legend.Add(pod, l)
			}
			p.Add(l)
		}
	}
	return p, nil
}
