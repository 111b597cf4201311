package gateway_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/rtstack/rtstack/gateway"
	"github.com/rtstack/rtstack/infra/kafka"
	"github.com/rtstack/rtstack/internal/testsvc"
)

// Test 6: while the broker is away a send gets an error frame and never an
// ack; when it is back (same data, same address) sends work again, the live
// tail resumes and a client that was away recovers with since.
func TestBrokerRestart(t *testing.T) {
	g, b, restart := outageStack(t)
	alice, bob, carol := g.dial(t, "alice"), g.dial(t, "bob"), g.dial(t, "carol")
	for _, c := range []*client{alice, bob, carol} {
		c.join("r")
	}
	alice.say("r", "before", "before the outage")
	seen := carol.messages("r", 1)[0]
	_ = carol.ws.Close()

	b.Close()
	alice.send(map[string]any{"type": "send", "room": "r", "client_id": "during", "text": "during the outage"})
	e := alice.expect("answer to during", func(f frame) bool {
		return (f.Type == "error" || f.Type == "ack") && ((f.Ref != nil && *f.Ref == "during") || f.ClientID == "during")
	})
	if e.Type != "error" || e.Code != gateway.CodeUnavailable {
		t.Fatalf("send during the outage answered %s, want error %s", e.raw, gateway.CodeUnavailable)
	}

	restart()
	ack := alice.awaitSendWorks("r", "after-")
	bob.expect("live message after restart", func(f frame) bool { return f.Type == "message" && f.MessageID == ack.MessageID })
	// The refused send may still reach the log (its outcome was unknown),
	// but it is never acknowledged.
	for _, f := range alice.await("all", func([]frame) bool { return true }) {
		if f.Type == "ack" && f.ClientID == "during" {
			t.Fatalf("a send answered with an error was acknowledged: %s", f.raw)
		}
	}

	carol2 := g.dial(t, "carol")
	carol2.send(map[string]any{"type": "join", "room": "r", "since": map[string]any{"partition": seen.Partition, "offset": seen.Offset}})
	m := carol2.expect("the message after the restart", func(f frame) bool { return f.Type == "message" && f.MessageID == ack.MessageID })
	for _, f := range of(carol2.await("all", func([]frame) bool { return true }), "message") {
		if f.Offset <= seen.Offset {
			t.Fatalf("carol recovered %s, at or before her since %d", f.raw, seen.Offset)
		}
		if f.Offset > m.Offset {
			break
		}
	}
}

// outageStack is a stack and gateway (actions answered within 3 s) on a
// broker of their own: close it, and restart brings it back on the same
// address with the same data.
func outageStack(t *testing.T) (g *gw, b *kafka.Broker, restart func()) {
	testsvc.Integration(t)
	dir := t.TempDir()
	b, err := kafka.StartBroker(kafka.BrokerConfig{Addr: "127.0.0.1:0", DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	addr := b.Addr()
	t.Cleanup(b.Close)
	st := newStack(t, stackOpts{addr: addr, deliveryTimeout: time.Second})
	g = st.gateway(t, func(c *gateway.Config) { c.CommandTimeout = 3 * time.Second })
	return g, b, func() {
		b2, err := kafka.StartBroker(kafka.BrokerConfig{Addr: addr, DataDir: dir})
		if err != nil {
			t.Fatalf("restart broker on %s: %v", addr, err)
		}
		t.Cleanup(b2.Close)
	}
}

// awaitSendWorks sends to room until one send is acked and returns the
// ack: the producer reconnects on its own after an outage.
func (c *client) awaitSendWorks(room, prefix string) frame {
	c.t.Helper()
	deadline := time.Now().Add(waitFor)
	for i := 0; ; i++ {
		id := fmt.Sprint(prefix, i)
		c.send(map[string]any{"type": "send", "room": room, "client_id": id, "text": "after the outage"})
		f := c.expect("answer to "+id, func(f frame) bool {
			return (f.Type == "error" && f.Ref != nil && *f.Ref == id) || (f.Type == "ack" && f.ClientID == id)
		})
		if f.Type == "ack" {
			return f
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("no send acknowledged after the broker came back: %s", f.raw)
		}
	}
}
