package main

import (
	"bufio"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/knowingnode/knowingnode/internal/load/engine"
	"github.com/knowingnode/knowingnode/loadtest/plot"
)

// busiest is how many pods a live line names.
const busiest = 3

// reporter prints a line per window, writes JSON lines and, with --plot,
// keeps the windows to draw, in memory bounded by plot.MaxPoints. Its
// methods are called from one goroutine at a time.
type reporter struct {
	out      io.Writer
	jsonFile *os.File
	json     *bufio.Writer
	plotFile *os.File
	series   *plot.Series // nil without --plot: no window is kept
	fanout   bool
	policy   string
	err      error
}

// newReporter opens the --json and --plot files before the run, so that a
// path that cannot be written is reported before any call is made.
func newReporter(o *options, out io.Writer) (*reporter, error) {
	r := &reporter{out: out, fanout: o.call != "identity", policy: o.balancing}
	switch o.jsonFile {
	case "":
	case "-":
		r.json = bufio.NewWriter(os.Stdout)
	default:
		f, err := os.Create(o.jsonFile)
		if err != nil {
			return nil, fmt.Errorf("invalid value %q for flag --json: %w; want %s", o.jsonFile, err, accepted["json"])
		}
		r.jsonFile, r.json = f, bufio.NewWriter(f)
	}
	if o.plotFile != "" {
		f, err := os.Create(o.plotFile)
		if err != nil {
			if r.jsonFile != nil {
				r.jsonFile.Close()
			}
			return nil, fmt.Errorf("invalid value %q for flag --plot: %w; want %s", o.plotFile, err, accepted["plot"])
		}
		r.plotFile, r.series = f, &plot.Series{}
	}
	return r, nil
}

// record is one JSON line: a window or the summary.
type record struct {
	Type string `json:"type"`
	// Policy is the client's balancing policy (--policy).
	Policy string `json:"policy"`
	*engine.Stats
}

func (r *reporter) writeJSON(kind string, s *engine.Stats) {
	if r.json == nil || r.err != nil {
		return
	}
	b, err := json.Marshal(record{Type: kind, Policy: r.policy, Stats: s})
	if err == nil {
		b = append(b, '\n')
		_, err = r.json.Write(b)
	}
	if err == nil {
		// A line per window, so a reader can follow the run live.
		err = r.json.Flush()
	}
	if err != nil {
		r.err = fmt.Errorf("--json: %w", err)
	}
}

func (r *reporter) window(w *engine.Stats) {
	if r.series != nil {
		r.series.Add(w)
	}
	fmt.Fprintln(r.out, r.line(w))
	r.writeJSON("window", w)
}

// line is the live line of a window: time, rate, latency, errors, busiest pods.
func (r *reporter) line(w *engine.Stats) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%6.1fs  %7.1f/s  p50 %-8v p99 %-8v", w.Elapsed.Seconds(), w.Rate, round(w.Latency.P50), round(w.Latency.P99))
	fmt.Fprintf(&b, "  ok %d", w.OK)
	if w.Failed > 0 {
		fmt.Fprintf(&b, " failed %d %s", w.Failed, codes(w.ByCode))
	}
	if w.Draining > 0 {
		fmt.Fprintf(&b, " draining %d", w.Draining)
	}
	if n := w.Late + w.Dropped; n > 0 {
		fmt.Fprintf(&b, " not-on-time %d", n)
	}
	fmt.Fprintf(&b, "  pods %s", shares(w.ByPod, w.OK))
	if r.fanout && len(w.BackendByPod) > 0 {
		var total int64
		for _, n := range w.BackendByPod {
			total += n
		}
		fmt.Fprintf(&b, "  backends %s", shares(w.BackendByPod, total))
	}
	return b.String()
}

func round(d time.Duration) time.Duration {
	if d > 10*time.Millisecond {
		return d.Round(time.Millisecond)
	}
	return d.Round(10 * time.Microsecond)
}

// codes lists the failure codes, e.g. "[UNAVAILABLE 12]".
func codes(by map[string]int64) string {
	var s []string
	for _, c := range slices.Sorted(maps.Keys(by)) {
		if c != "OK" && c != engine.CodeDraining {
			s = append(s, fmt.Sprintf("%s %d", c, by[c]))
		}
	}
	return "[" + strings.Join(s, ", ") + "]"
}

// shares names the busiest pods and their share of total, e.g. "backend-0 34% ...".
func shares(by map[string]int64, total int64) string {
	if total == 0 {
		return "-"
	}
	pods := slices.SortedFunc(maps.Keys(by), func(a, b string) int {
		return cmp.Or(cmp.Compare(by[b], by[a]), strings.Compare(a, b))
	})
	var s []string
	for i, p := range pods {
		if i == busiest {
			s = append(s, fmt.Sprintf("+%d more", len(pods)-busiest))
			break
		}
		s = append(s, fmt.Sprintf("%s %.0f%%", p, 100*float64(by[p])/float64(total)))
	}
	return strings.Join(s, " ")
}

// close prints and writes the summary, draws the plot and closes the files.
func (r *reporter) close(sum *engine.Stats) error {
	if sum != nil {
		fmt.Fprintf(r.out, "summary: policy %s, %d sent in %v (%.1f/s of %g asked), %d ok, %d failed %s, %d draining, %d late, %d dropped (not sent, not in the latency), latency of the calls made p50 %v p90 %v p99 %v max %v, pods %s\n",
			r.policy, sum.Sent, sum.Length.Round(time.Millisecond), sum.Rate, sum.RequestedRate, sum.OK, sum.Failed, codes(sum.ByCode), sum.Draining, sum.Late, sum.Dropped,
			round(sum.Latency.P50), round(sum.Latency.P90), round(sum.Latency.P99), round(sum.Latency.Max), shares(sum.ByPod, sum.OK))
		for _, l := range loadLines(sum, r.policy) {
			fmt.Fprintln(r.out, l)
		}
		r.writeJSON("summary", sum)
	}
	err := r.err
	if r.jsonFile != nil {
		err = errors.Join(err, r.jsonFile.Close())
	}
	if r.plotFile != nil {
		name := r.plotFile.Name()
		var perr error
		if sum != nil {
			perr = r.series.WritePNG(r.plotFile, sum, r.fanout)
		}
		perr = errors.Join(perr, r.plotFile.Close())
		if sum == nil {
			// No run, no plot: leave no empty file behind.
			perr = errors.Join(perr, os.Remove(name))
		}
		if perr != nil {
			err = errors.Join(err, fmt.Errorf("--plot %s: %w", name, perr))
		}
	}
	return err
}
