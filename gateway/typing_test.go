package gateway_test

import (
	"testing"
)

// A typing frame reaches the room's other members at once, is never
// appended to the log, is rate limited per connection and room, and needs
// membership like any room action.
func TestTypingRelayedNotLogged(t *testing.T) {
	st := newStack(t, stackOpts{})
	g := st.gateway(t, nil)
	alice, bob, carol := g.dial(t, "alice"), g.dial(t, "bob"), g.dial(t, "carol")
	carol.join("room-2")
	alice.join("room-1")
	bobJoined := bob.join("room-1")

	alice.send(map[string]any{"type": "typing", "room": "room-1"})
	got := bob.expectType("typing")
	if got.Room != "room-1" || got.User != "alice" {
		t.Fatalf("bob got %s, want alice typing in room-1", got.raw)
	}
	alice.send(map[string]any{"type": "typing", "room": "room-1", "client_id": "t2"})
	if e := alice.expectError("rate_limited"); e.Ref == nil || *e.Ref != "t2" {
		t.Fatalf("rate_limited error without the frame's ref: %s", e.raw)
	}
	carol.send(map[string]any{"type": "typing", "room": "room-1", "client_id": "t3"})
	carol.expectError("not_member")

	// The next record of room-1 directly follows bob's join: the typing
	// frames took no offset.
	ack := alice.say("room-1", "c1", "done typing")
	if ack.Partition != bobJoined.Partition || ack.Offset != bobJoined.Offset+1 {
		t.Fatalf("message at %v, want right after bob's join at %v: something was appended for typing", ack.pos(), bobJoined.pos())
	}
	bob.messages("room-1", 1)
	if n := len(of(bob.await("one typing", func([]frame) bool { return true }), "typing")); n != 1 {
		t.Fatalf("bob got %d typing frames, want 1 (the second was refused)", n)
	}
	for _, f := range of(carol.await("carol's frames", func([]frame) bool { return true }), "typing") {
		t.Fatalf("carol, not in room-1, got %s", f.raw)
	}
}
