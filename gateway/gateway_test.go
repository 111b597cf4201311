package gateway_test

import (
	"fmt"
	"sync"
	"testing"

	"github.com/rtstack/rtstack/events"
	"github.com/rtstack/rtstack/gateway"
)

// Test 1: an acked message reaches every member at the position of the ack,
// and many concurrent senders are seen in one identical order.
func TestSendAckAndOrder(t *testing.T) {
	st := newStack(t, stackOpts{})
	g := st.gateway(t, nil)
	alice, bob := g.dial(t, "alice"), g.dial(t, "bob")
	alice.join("room-1")
	bob.join("room-1")

	ack := alice.say("room-1", "c1", "hello")
	if ack.MessageID == "" {
		t.Fatalf("ack without message_id: %s", ack.raw)
	}
	for _, c := range []*client{alice, bob} {
		m := c.messages("room-1", 1)[0]
		if m.Text != "hello" || m.User != "alice" || m.MessageID != ack.MessageID || m.pos() != ack.pos() {
			t.Fatalf("%s got %s, want hello at %v as in the ack", c.user, m.raw, ack.pos())
		}
		if m.TS == 0 {
			t.Errorf("message without ts: %s", m.raw)
		}
	}

	senders := []*client{alice, bob, g.dial(t, "carol"), g.dial(t, "dave")}
	for _, c := range senders[2:] {
		c.join("room-1")
	}
	const total = 1000
	var wg sync.WaitGroup
	for i, c := range senders {
		wg.Go(func() {
			for j := range total / len(senders) {
				c.send(map[string]any{"type": "send", "room": "room-1", "client_id": fmt.Sprintf("s%d-%d", i, j), "text": fmt.Sprintf("m %d %d", i, j)})
			}
		})
	}
	wg.Wait()
	got := map[string][]frame{}
	for _, c := range senders {
		ms := c.messages("room-1", total+boolInt(c == alice || c == bob))
		got[c.user] = ms[len(ms)-total:]
		if n := len(of(c.await("acks", func(fs []frame) bool { return len(of(fs, "ack")) >= total/len(senders)+boolInt(c == alice) }), "ack")); n < total/len(senders) {
			t.Fatalf("%s: %d acks", c.user, n)
		}
	}
	sameOrder(t, got)
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// Test 2: two gateways over one log deliver the same order.
func TestTwoGatewaysSameOrder(t *testing.T) {
	st := newStack(t, stackOpts{})
	g1, g2 := st.gateway(t, nil), st.gateway(t, nil)
	a, b := g1.dial(t, "alice"), g2.dial(t, "bob")
	a.join("lobby")
	b.join("lobby")
	const each = 150
	var wg sync.WaitGroup
	for i, c := range []*client{a, b} {
		wg.Go(func() {
			for j := range each {
				c.send(map[string]any{"type": "send", "room": "lobby", "client_id": fmt.Sprint(i, "-", j), "text": "x"})
			}
		})
	}
	wg.Wait()
	sameOrder(t, map[string][]frame{"gateway1": a.messages("lobby", 2*each), "gateway2": b.messages("lobby", 2*each)})
}

// Test 3: resending a client_id never shows a second message, with a
// dedupe store and without one (the gateway drops the repeated id).
func TestResendIsIdempotent(t *testing.T) {
	for _, tc := range []struct {
		name     string
		outcomes bool
	}{{"with_outcomes", true}, {"log_dedupe_only", false}} {
		t.Run(tc.name, func(t *testing.T) {
			o := stackOpts{}
			if tc.outcomes {
				o.outcomes = &memOutcomes{m: map[string]events.Position{}}
			}
			st := newStack(t, o)
			g := st.gateway(t, nil)
			alice, bob := g.dial(t, "alice"), g.dial(t, "bob")
			alice.join("r")
			bob.join("r")
			first := alice.say("r", "same", "once")
			for range 3 {
				again := alice.say("r", "same", "once")
				if again.MessageID != first.MessageID {
					t.Fatalf("resend got message id %s, first %s", again.MessageID, first.MessageID)
				}
				if tc.outcomes && (again.pos() != first.pos() || !again.Duplicate) {
					t.Fatalf("resend with outcomes: %s, want the first position %v marked duplicate", again.raw, first.pos())
				}
				if !tc.outcomes && again.pos() == first.pos() {
					t.Fatalf("without outcomes the resend should be appended again (that is what is tested): %s", again.raw)
				}
			}
			alice.say("r", "marker", "end")
			for _, c := range []*client{alice, bob} {
				ms := c.messages("r", 2)
				if ms[0].Text != "once" || ms[1].Text != "end" {
					t.Fatalf("%s saw %q then %q; want once then end, nothing twice", c.user, ms[0].raw, ms[1].raw)
				}
				if n := len(of(c.await("all", func([]frame) bool { return true }), "message")); n != 2 {
					t.Fatalf("%s saw %d messages, want 2", c.user, n)
				}
			}
			// The recovery path drops the repeat too.
			carol := g.dial(t, "carol")
			carol.send(map[string]any{"type": "join", "room": "r", "since": map[string]any{"partition": first.Partition, "offset": first.Offset - 1}})
			ms := carol.messages("r", 2)
			if ms[0].MessageID != first.MessageID || ms[1].Text != "end" {
				t.Fatalf("recovery: %s then %s", ms[0].raw, ms[1].raw)
			}
			carol.expect("carol joined", func(f frame) bool { return f.Type == "joined" && f.User == "carol" })
			if n := len(of(carol.await("all", func([]frame) bool { return true }), "message")); n != 2 {
				t.Fatalf("recovery delivered %d messages, want 2", n)
			}
		})
	}
}

// Test 5: each action's frame, in log order, and authorship.
func TestActionsInLogOrder(t *testing.T) {
	st := newStack(t, stackOpts{})
	g := st.gateway(t, nil)
	alice, bob := g.dial(t, "alice"), g.dial(t, "bob")
	alice.join("r")
	bob.join("r")
	ack := alice.say("r", "c1", "first")
	st.authors.add("r", ack.MessageID, "alice")
	id := ack.MessageID

	alice.send(map[string]any{"type": "edit", "room": "r", "message_id": id, "text": "edited"})
	alice.send(map[string]any{"type": "react", "room": "r", "message_id": id, "emoji": "👍"})
	bob.expect("alice's reaction", func(f frame) bool { return f.Type == "reaction" && f.User == "alice" })
	bob.send(map[string]any{"type": "react", "room": "r", "message_id": id, "emoji": "🎉"})
	bob.expect("bob's reaction", func(f frame) bool { return f.Type == "reaction" && f.User == "bob" })
	bob.send(map[string]any{"type": "react", "room": "r", "message_id": id, "emoji": "🎉", "remove": true})
	bob.expect("bob's removal", func(f frame) bool { return f.Type == "reaction" && f.Removed })
	bob.send(map[string]any{"type": "edit", "room": "r", "message_id": id, "text": "mine now", "client_id": "b1"})
	if e := bob.expectError(gateway.CodeNotAuthor); e.Ref == nil || *e.Ref != "b1" {
		t.Fatalf("not_author error without ref b1: %s", e.raw)
	}
	bob.send(map[string]any{"type": "delete", "room": "r", "message_id": "nope"})
	bob.expectError(gateway.CodeUnknownMessage)
	alice.send(map[string]any{"type": "delete", "room": "r", "message_id": id})
	carol := g.dial(t, "carol")
	alice.expect("deleted", func(f frame) bool { return f.Type == "deleted" })
	carol.join("r")
	carol.send(map[string]any{"type": "leave", "room": "r"})
	carol.expect("carol's own left", func(f frame) bool { return f.Type == "left" && f.User == "carol" })
	carol.send(map[string]any{"type": "send", "room": "r", "text": "after leaving", "client_id": "x"})
	carol.expectError(gateway.CodeNotMember)

	want := []string{"joined", "message", "edited", "reaction", "reaction", "reaction", "deleted", "joined", "left"}
	fs := bob.await("carol left", func(fs []frame) bool {
		return len(of(fs, "left")) == 1
	})
	got := of(fs, "joined", "message", "edited", "reaction", "deleted", "left")
	// bob's view starts at his own join (alice joined before him).
	if len(got) != len(want) {
		t.Fatalf("bob saw %d events %v, want %v", len(got), types(got), want)
	}
	for i, f := range got {
		if f.Type != want[i] {
			t.Fatalf("event %d is %s, want %s (all: %v)", i, f.Type, want[i], types(got))
		}
		if i > 0 && f.Offset <= got[i-1].Offset {
			t.Fatalf("event %d at offset %d after %d", i, f.Offset, got[i-1].Offset)
		}
	}
	if got[2].Text != "edited" || got[3].Emoji != "👍" || got[4].User != "bob" || !got[5].Removed || got[6].MessageID != id {
		t.Fatalf("frames carry the wrong fields: %v", raws(got))
	}
}

func types(fs []frame) []string {
	out := make([]string, len(fs))
	for i, f := range fs {
		out[i] = f.Type
	}
	return out
}

func raws(fs []frame) []string {
	out := make([]string, len(fs))
	for i, f := range fs {
		out[i] = f.raw
	}
	return out
}
