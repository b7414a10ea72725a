//go:build race

package fanout

// raceEnabled: the race detector allows 8,128 goroutines at once, fewer
// than 1,000 loopback backends and their connections need.
const raceEnabled = true
