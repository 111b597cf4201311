package worker

import (
	"testing"
	"time"
)

// HoldAcks makes the workers started by t hold each ack behind an earlier
// delivery in progress for d (ackHold) instead of the default.
func HoldAcks(t testing.TB, d time.Duration) {
	old := ackHold
	ackHold = d
	t.Cleanup(func() { ackHold = old })
}
