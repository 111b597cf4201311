package gateway_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/rtstack/rtstack/gateway"
	"github.com/rtstack/rtstack/infra/kafka"
)

// Test 4: a client that reconnects with since gets exactly what it missed
// and then the live stream, while another client keeps sending during the
// catch-up.
func TestRecoveryNoGapNoDuplicate(t *testing.T) {
	st := newStack(t, stackOpts{})
	g := st.gateway(t, nil)
	alice, bob := g.dial(t, "alice"), g.dial(t, "bob")
	alice.join("room-1")
	bob.join("room-1")
	for i := range 5 {
		bob.say("room-1", fmt.Sprint("a", i), fmt.Sprint("before ", i))
	}
	last := alice.messages("room-1", 5)[4]
	_ = alice.ws.Close()

	// Missed while away.
	for i := range 20 {
		bob.say("room-1", fmt.Sprint("b", i), fmt.Sprint("missed ", i))
	}
	// Keep sending while alice catches up.
	const during = 200
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := range during {
			bob.send(map[string]any{"type": "send", "room": "room-1", "client_id": fmt.Sprint("c", i), "text": fmt.Sprint("during ", i)})
		}
	})
	alice2 := g.dial(t, "alice")
	alice2.send(map[string]any{"type": "join", "room": "room-1", "since": map[string]any{"partition": last.Partition, "offset": last.Offset}})
	wg.Wait()

	all := bob.messages("room-1", 5+20+during)
	var want []frame
	for _, m := range all {
		if m.Offset > last.Offset {
			want = append(want, m)
		}
	}
	got := alice2.messages("room-1", len(want))
	sameOrder(t, map[string][]frame{"bob (live)": want, "alice (recovered)": got})
	if got[0].Text != "missed 0" {
		t.Fatalf("recovery starts at %s, want the first missed message", got[0].raw)
	}
	// And she is live afterwards.
	ack := bob.say("room-1", "z", "live again")
	alice2.expect("live message", func(f frame) bool { return f.Type == "message" && f.MessageID == ack.MessageID })
	if n := len(alice2.messages("room-1", len(want)+1)); n != len(want)+1 {
		t.Fatalf("alice has %d messages, want %d", n, len(want)+1)
	}
}

// Test 4b: positions that cannot be served get resync, and no membership.
func TestRecoveryResync(t *testing.T) {
	st := newStack(t, stackOpts{partitions: 3})
	g := st.gateway(t, func(c *gateway.Config) { c.RecoveryWindow = 5 })
	bob := g.dial(t, "bob")
	bob.join("room-1")
	var first frame
	for i := range 10 {
		a := bob.say("room-1", fmt.Sprint(i), "x")
		if i == 0 {
			first = a
		}
	}
	last := bob.messages("room-1", 10)[9]
	p := first.Partition
	for _, tc := range []struct {
		name   string
		since  map[string]any
		reason string
	}{
		{"other partition", map[string]any{"partition": (p + 1) % 3, "offset": 0}, gateway.ReasonWrongPartition},
		{"beyond end", map[string]any{"partition": p, "offset": last.Offset + 1000}, gateway.ReasonBeyondEnd},
		{"older than window", map[string]any{"partition": p, "offset": first.Offset}, gateway.ReasonTooOld},
		{"log recreated", map[string]any{"partition": p, "offset": last.Offset, "topic_id": "another-log"}, gateway.ReasonLogRecreated},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := g.dial(t, "carol")
			c.send(map[string]any{"type": "join", "room": "room-1", "since": tc.since})
			f := c.expectType("resync")
			if f.Room != "room-1" || f.Reason != tc.reason {
				t.Fatalf("got %s, want resync of room-1 with reason %s", f.raw, tc.reason)
			}
			c.send(map[string]any{"type": "send", "room": "room-1", "text": "hi", "client_id": "q"})
			c.expectError(gateway.CodeNotMember)
		})
	}
	t.Run("within window", func(t *testing.T) {
		c := g.dial(t, "dave")
		c.send(map[string]any{"type": "join", "room": "room-1", "since": map[string]any{"partition": p, "offset": last.Offset - 3}})
		ms := c.messages("room-1", 3)
		if ms[0].Offset != last.Offset-2 || ms[2].Offset != last.Offset {
			t.Fatalf("recovered %v, want the 3 records after %d", raws(ms), last.Offset-3)
		}
	})
}

// A log deleted and created again is noticed: every joined room gets
// resync, and the new log is served from then on.
func TestLogRecreated(t *testing.T) {
	st := newStack(t, stackOpts{partitions: 3})
	g := st.gateway(t, func(c *gateway.Config) { c.TopicCheckInterval = 50 * time.Millisecond })
	alice := g.dial(t, "alice")
	alice.join("r")
	old := alice.say("r", "c1", "in the old log")
	oldID := g.srv.TopicID()

	adm := kadm.NewClient(st.cl)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := adm.DeleteTopic(ctx, topic); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(waitFor)
	for {
		if _, err := kafka.EnsureTopic(ctx, st.cl, topic, 3); err == nil {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("recreate topic: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	f := alice.expectType("resync")
	if f.Room != "r" || f.Reason != gateway.ReasonLogRecreated {
		t.Fatalf("got %s, want resync of r, log_recreated", f.raw)
	}
	if id := g.srv.TopicID(); oldID == "" || id == oldID {
		t.Fatalf("TopicID %q after recreation, %q before", id, oldID)
	}
	// The producer is not the gateway's: kgo keeps the old topic id until
	// the topic is purged from the client.
	st.cl.PurgeTopicsFromClient(topic)
	// Not a member any more; joining again works on the new log.
	alice.send(map[string]any{"type": "send", "room": "r", "text": "x", "client_id": "q"})
	alice.expectError(gateway.CodeNotMember)
	alice.join("r")
	ack := alice.say("r", "c2", "in the new log")
	alice.expect("message in the new log", func(f frame) bool { return f.Type == "message" && f.MessageID == ack.MessageID })
	// A since from the old log is refused when its topic id is given.
	bob := g.dial(t, "bob")
	bob.send(map[string]any{"type": "join", "room": "r", "since": map[string]any{"partition": old.Partition, "offset": old.Offset, "topic_id": oldID}})
	if f := bob.expectType("resync"); f.Reason != gateway.ReasonLogRecreated {
		t.Fatalf("since with an old topic id: %s", f.raw)
	}
}
