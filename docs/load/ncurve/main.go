// Command ncurve draws what a fan-out costs against how many backends it
// calls, from a `make load` summary: the frontend's CPU-seconds per 10k
// fan-outs at N = 1, 3, 10, 30 (c=50) and at widths 10, 100, 1,000 (c=1),
// beside N times the backend's own cost per call, on log-log axes.
//
//	go run ./docs/load/ncurve -summary bin/load/<time>/summary.txt -o ncurve.png
package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"regexp"
	"slices"
	"strconv"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
)

func main() {
	summary := flag.String("summary", "", "a make load summary.txt")
	out := flag.String("o", "ncurve.png", "the PNG to write")
	flag.Parse()
	f, err := os.Open(*summary)
	if err != nil {
		log.Fatalf("ncurve: %v", err)
	}
	defer f.Close()
	c, err := parse(f)
	if err != nil {
		log.Fatalf("ncurve: %s: %v", *summary, err)
	}
	if err := draw(c, *out); err != nil {
		log.Fatalf("ncurve: %v", err)
	}
}

// costs are a run's CPU-seconds per 10k calls: the backend's, and the
// frontend's per fan-out by backends called, closed-loop (c=50) and one at
// a time (c=1, the width rows).
type costs struct {
	backend      float64
	loaded, wide plotter.XYs
}

var row = regexp.MustCompile(`^(backend GetIdentity|frontend FanOut EACH (N|w)=(\d+)(?: c=\d+)?) +\d+ req .* CPU +([\d.]+) s/10k`)

func parse(r io.Reader) (costs, error) {
	var c costs
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		m := row.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		cpu, err := strconv.ParseFloat(m[4], 64)
		if err != nil {
			return c, fmt.Errorf("%q: %w", sc.Text(), err)
		}
		if m[2] == "" {
			c.backend = cpu
			continue
		}
		n, _ := strconv.Atoi(m[3]) // \d+
		xy := plotter.XY{X: float64(n), Y: cpu}
		if m[2] == "N" {
			c.loaded = append(c.loaded, xy)
		} else {
			c.wide = append(c.wide, xy)
		}
	}
	if err := sc.Err(); err != nil {
		return c, err
	}
	if c.backend == 0 || len(c.loaded) < 2 {
		return c, fmt.Errorf("no backend GetIdentity row or fewer than 2 FanOut EACH N= rows")
	}
	for _, s := range []plotter.XYs{c.loaded, c.wide} {
		slices.SortFunc(s, func(a, b plotter.XY) int { return int(a.X - b.X) })
	}
	return c, nil
}

func draw(c costs, file string) error {
	p := plot.New()
	p.Title.Text = "frontend CPU per fan-out against backends called"
	p.X.Label.Text = "backends per fan-out (N)"
	p.Y.Label.Text = "CPU-seconds per 10k fan-outs"
	p.X.Scale, p.Y.Scale = plot.LogScale{}, plot.LogScale{}
	p.X.Tick.Marker, p.Y.Tick.Marker = plot.LogTicks{Prec: -1}, plot.LogTicks{Prec: -1}
	p.Legend.Top, p.Legend.Left = false, false // bottom right: the lines rise to the right
	p.Add(plotter.NewGrid())
	hi := c.loaded[len(c.loaded)-1].X
	if len(c.wide) > 0 {
		hi = max(hi, c.wide[len(c.wide)-1].X)
	}
	ref := plotter.XYs{{X: 1, Y: c.backend}, {X: hi, Y: hi * c.backend}}
	series := []any{"fan-out, c=50", c.loaded, "N × the backend's own cost per call", ref}
	if len(c.wide) > 0 {
		series = append(series[:2], append([]any{"fan-out one at a time, c=1", c.wide}, series[2:]...)...)
	}
	if err := plotutil.AddLinePoints(p, series...); err != nil {
		return err
	}
	return p.Save(16*vg.Centimeter, 11*vg.Centimeter, file)
}
