// Package projectionstest is the test kit of projections and its stores:
// Run starts a projector for a test, Contract is the suite every
// rebuildable store must pass (run over each store with a Harness), and
// Traffic generates reproducible chat traffic.
package projectionstest

import (
	"context"
	"sync"
	"testing"

	"github.com/rtstack/rtstack/projections"
)

// Run starts a projector for cfg in this process; it is stopped when the
// test ends, and a Run that ended with an error fails the test.
func Run(t testing.TB, cfg projections.Config) *projections.Projector {
	t.Helper()
	pr, _ := Start(t, cfg)
	return pr
}

// Start is Run that can also be stopped before the test ends: stop cancels
// the projector and waits for Run to return (once; the test's end calls it
// too).
func Start(t testing.TB, cfg projections.Config) (pr *projections.Projector, stop func()) {
	t.Helper()
	pr, err := projections.NewProjector(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- pr.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("projector: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return pr, stop
}
