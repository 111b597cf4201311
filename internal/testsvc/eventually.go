package testsvc

import (
	"testing"
	"time"
)

// Eventually polls cond every 20 ms until it holds, failing t after d with
// what was awaited. Tests synchronise with it instead of fixed sleeps.
func Eventually(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
