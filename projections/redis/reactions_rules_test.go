package redis_test

import (
	"fmt"
	"reflect"
	"testing"

	"github.com/rtstack/rtstack/events"
	"github.com/rtstack/rtstack/projections/view"
)

// Reacting to one's own message scores nothing, and one user's distinct
// reactions on one message score at most events.MaxReactionsPerUser.
func TestSelfReactionsAndTheCapScoreNothing(t *testing.T) {
	p, _, _ := open(t)
	evs := []events.Event{
		sent("a", "ann", "m1", base),
		react("a", "ann", "m1", "self", base), // own message: no point
	}
	for i := range events.MaxReactionsPerUser + 3 {
		evs = append(evs, react("a", "bob", "m1", fmt.Sprint("e", i), base))
	}
	applyAll(t, p, evs...)
	want := []view.ScoreEntry{{User: "ann", Score: int64(events.MaxReactionsPerUser)}}
	if got := board(t, p.ReactionsBoard); !reflect.DeepEqual(got, want) {
		t.Fatalf("reactions board = %v, want %v", got, want)
	}
	applyAll(t, p,
		unreact("a", "ann", "m1", "self", base),                                      // never scored: nothing back
		unreact("a", "bob", "m1", fmt.Sprint("e", events.MaxReactionsPerUser), base), // past the cap: never scored
		unreact("a", "bob", "m1", "e0", base),                                        // scored: back, and room for one
		react("a", "bob", "m1", "again", base),
		react("a", "bob", "m1", "over", base), // the cap again
	)
	if got := board(t, p.ReactionsBoard); !reflect.DeepEqual(got, want) {
		t.Fatalf("reactions board after removals = %v, want %v", got, want)
	}
}
