// Package poll is the one way the tests wait for a condition: try it, and
// again every interval, until it holds or the limit passes; the error then
// says what was waited for and the condition's last error.
package poll

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// Every is the interval the helpers use unless told otherwise.
const Every = 100 * time.Millisecond

// Until calls cond every interval until it returns nil, the limit passes,
// or ctx ends. cond's context ends with the limit, so a slow try cannot
// outlive it.
func Until(ctx context.Context, limit, every time.Duration, what string, cond func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		err := cond(ctx)
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waited %v for %s: %w", limit, what, err)
		case <-t.C:
		}
	}
}

// T is Until for a test: it fails the test when the condition never holds.
func T(tb testing.TB, limit time.Duration, what string, cond func(context.Context) error) {
	tb.Helper()
	if err := Until(tb.Context(), limit, Every, what, cond); err != nil {
		tb.Fatal(err)
	}
}
