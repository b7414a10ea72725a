package discovery

import (
	"testing"

	"go.uber.org/goleak"
)

// Every goroutine a test starts is joined by the time the tests end.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
