package meterproto

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if a test leaves a goroutine running: the simulator's
// listeners and connections, a client's context watcher.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
