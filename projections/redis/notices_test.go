package redis_test

import (
	"context"
	"reflect"
	"testing"
	"time"

	"github.com/rtstack/rtstack/events"
	"github.com/rtstack/rtstack/projections/view"
)

// A committed apply announces the boards it changed; records that change
// no board (a reaction, an edit) announce nothing; a subscription starts
// with All, since notices before it were missed.
func TestApplyAnnouncesChangedBoards(t *testing.T) {
	p, _, _ := open(t)
	ctx, cancel := context.WithCancel(context.Background())
	notices := make(chan view.BoardChange, 16)
	done := make(chan error, 1)
	go func() { done <- p.WatchBoards(ctx, func(c view.BoardChange) { notices <- c }) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("WatchBoards: %v", err)
		}
	})
	next := func(what string) view.BoardChange {
		t.Helper()
		select {
		case c := <-notices:
			return c
		case <-time.After(10 * time.Second):
			t.Fatalf("no notice for %s", what)
			return view.BoardChange{}
		}
	}
	if c := next("subscribing"); !c.All {
		t.Fatalf("first notice %+v, want All", c)
	}
	ts := base
	first := []events.Event{react("lobby", "bob", "m0", "👍", ts), &events.MessageEdited{Envelope: env("lobby", "bob", ts), MessageID: "m0", Text: "x"}}
	second := []events.Event{join("lobby", "alice", ts), sent("lobby", "alice", "m1", ts), sent("side", "bob", "m2", ts), leave("side", "bob", ts)}
	applyAll(t, p, first...)
	applyAll(t, p, second...)
	// The first notice after subscribing is the second apply's: the first
	// changed no board.
	want := view.BoardChange{Leaderboard: true, Rooms: []string{"lobby", "side"}}
	if c := next("the second apply"); !reflect.DeepEqual(c, want) {
		t.Fatalf("notice %+v, want %+v", c, want)
	}
	third := join("quiet", "carol", ts)
	applyAll(t, p, third)
	if c := next("a join"); !reflect.DeepEqual(c, view.BoardChange{Rooms: []string{"quiet"}}) {
		t.Fatalf("notice %+v for a join, want the room's counters only", c)
	}
	// A version built aside announces nothing; its promotion changes every
	// board at once.
	store, ver, err := p.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	applyAll(t, store, append(append(first, second...), third)...)
	if ok, err := p.Promote(ctx, ver); err != nil || !ok {
		t.Fatalf("promote: %v %v", ok, err)
	}
	if c := next("the promotion"); !c.All {
		t.Fatalf("notice %+v after a promotion, want All", c)
	}
}
