package engine_test

import (
	"context"
	"testing"

	"github.com/knowingnode/knowingnode/internal/load/engine"
)

// BenchmarkEngineOverhead is the engine's own cost per call: a closed loop
// over a call that does nothing, so only pacing, recording into the HDR
// histograms and the per-pod maps remain. Compare with the network cost of
// a real call (see the README's side-by-side with ghz).
func BenchmarkEngineOverhead(b *testing.B) {
	call := func(context.Context) (engine.Result, error) {
		return engine.Result{Pod: "backend-0", Node: "node-a"}, nil
	}
	b.ReportAllocs()
	b.ResetTimer()
	sum, err := engine.Run(b.Context(), engine.Config{Concurrency: 1, Count: int64(b.N)}, call, nil)
	if err != nil {
		b.Fatal(err)
	}
	if sum.OK != int64(b.N) {
		b.Fatalf("ok %d of %d", sum.OK, b.N)
	}
}
