package gateway_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/rtstack/rtstack/events"
	"github.com/rtstack/rtstack/infra/kafka/kafkatest"
	"github.com/rtstack/rtstack/internal/testsvc"
)

// A record outside its room's partition (a producer with another
// partitioner) is part of no room's history: the gateway delivers it
// neither live nor on a since recovery, and counts it as a misplaced drop.
func TestMisplacedRecordsAreNeitherDeliveredNorReplayed(t *testing.T) {
	st, g, reg := meteredGateway(t)
	alice := g.dial(t, "alice")
	alice.join("room-1")
	alice.join("room-2")
	first := alice.say("room-1", "a0", "first")
	alice.messages("room-1", 1)
	for i, room := range []string{"room-1", "room-2"} {
		kafkatest.ProduceMisplaced(t, st.addr, topic, 3, st.codec, &events.MessageSent{
			Envelope:  events.Envelope{ID: fmt.Sprint("stray-", i), Room: room, User: "mallory", Time: time.Now().UnixMilli()},
			MessageID: fmt.Sprint("stray-", i), Text: "stray in " + room,
		})
	}
	testsvc.Eventually(t, waitFor, "both misplaced records counted", func() bool { return testsvc.Sum(t, reg, "rtstack_gateway_drops_total", "reason", "misplaced") == 2 })
	// Sent after the tail dropped the strays: a delivery of them would be
	// queued before these.
	alice.say("room-1", "a1", "second")
	alice.say("room-2", "b1", "third")
	alice.messages("room-1", 2)
	alice.messages("room-2", 1)
	for _, m := range of(alice.await("the frames so far", func([]frame) bool { return true }), "message") {
		if m.User == "mallory" {
			t.Errorf("live delivery of the misplaced %s", m.raw)
		}
	}

	bob := g.dial(t, "bob")
	bob.send(map[string]any{"type": "join", "room": "room-1", "since": map[string]any{"partition": first.Partition, "offset": first.Offset}})
	bob.messages("room-1", 1)
	bob.say("room-1", "c1", "live")
	got := bob.messages("room-1", 2)
	if len(got) != 2 || got[0].Text != "second" || got[1].Text != "live" {
		t.Errorf("recovered then live %v, want second then live", texts(got))
	}
	if n := testsvc.Sum(t, reg, "rtstack_gateway_drops_total", "reason", "misplaced"); n != 2 {
		t.Errorf("misplaced drops %v after recovery, want 2: recovery never reads another partition", n)
	}
}

func texts(fs []frame) []string {
	out := make([]string, len(fs))
	for i, f := range fs {
		out[i] = f.Text
	}
	return out
}
