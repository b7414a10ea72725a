// Package dist runs one load test on many workers: a coordinator finds its
// workers the way the frontend finds backends, starts them all at one
// absolute time t0, each with its share of the rate (see Split), and merges
// their per-window HdrHistograms and counts exactly, window by window,
// noticing a worker that stops reporting. See README.md.
package dist

// MaxWorkers bounds the workers of one run.
const MaxWorkers = 1000
