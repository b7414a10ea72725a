package matrix

import (
	"testing"

	"go.uber.org/goleak"
)

// Every frontend, pool, peer set and tracker a test starts is closed, and
// their goroutines with them.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
