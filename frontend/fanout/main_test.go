package fanout

import (
	"testing"

	"go.uber.org/goleak"
)

// Every Service, pool and backend a test starts is closed, and their
// goroutines with them.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
