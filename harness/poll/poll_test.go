package poll

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestUntil(t *testing.T) {
	n := 0
	err := Until(context.Background(), time.Minute, time.Millisecond, "three tries", func(context.Context) error {
		if n++; n < 3 {
			return errors.New("not yet")
		}
		return nil
	})
	if err != nil || n != 3 {
		t.Fatalf("Until = %v after %d tries, want nil after 3", err, n)
	}
	err = Until(context.Background(), 20*time.Millisecond, time.Millisecond, "never", func(context.Context) error { return errors.New("still no") })
	if err == nil || !strings.Contains(err.Error(), "never") || !strings.Contains(err.Error(), "still no") {
		t.Fatalf("Until = %v, want an error naming what was waited for and the last error", err)
	}
}
