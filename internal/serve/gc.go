package serve

import (
	"log/slog"
	"runtime/debug"
)

// gcPercent replaces Go's default of 100: these servers keep a few MB live,
// and garbage collection dominated their CPU per request (../shared/NOTES.md
// measured 23.8 GC cycles per 10k calls at GOGC=100); 400 trades a few MB of
// heap for a fraction of the cycles.
const gcPercent = 400

// TuneGC sets GOGC to gcPercent and, when the container's memory limit is
// known (the Downward API's limits.memory), a soft memory limit at 90% of it
// so the larger GOGC never pushes the process towards an OOM kill. The GOGC
// and GOMEMLIMIT environment variables, when set, win.
func TuneGC(log *slog.Logger, getenv func(string) string, memLimitBytes int64) {
	if getenv("GOGC") == "" {
		debug.SetGCPercent(gcPercent)
		log.Debug("garbage collector", "gogc", gcPercent)
	}
	if getenv("GOMEMLIMIT") == "" && memLimitBytes > 0 {
		debug.SetMemoryLimit(memLimitBytes / 10 * 9)
		log.Debug("garbage collector", "memory_limit_bytes", memLimitBytes/10*9)
	}
}
