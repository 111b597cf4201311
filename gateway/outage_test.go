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
	testsvc.Integration(t)
	dir := t.TempDir()
	b, err := kafka.StartBroker(kafka.BrokerConfig{Addr: "127.0.0.1:0", DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	addr := b.Addr()
	t.Cleanup(b.Close)
	st := newStack(t, stackOpts{addr: addr, deliveryTimeout: time.Second})
	g := st.gateway(t, func(c *gateway.Config) { c.CommandTimeout = 3 * time.Second })
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

	b2, err := kafka.StartBroker(kafka.BrokerConfig{Addr: addr, DataDir: dir})
	if err != nil {
		t.Fatalf("restart broker on %s: %v", addr, err)
	}
	t.Cleanup(b2.Close)

	// The producer reconnects on its own; retry until one send is acked.
	var ack frame
	deadline := time.Now().Add(waitFor)
	for i := 0; ; i++ {
		id := fmt.Sprint("after-", i)
		alice.send(map[string]any{"type": "send", "room": "r", "client_id": id, "text": "after the outage"})
		f := alice.expect("answer to "+id, func(f frame) bool {
			return (f.Type == "error" && f.Ref != nil && *f.Ref == id) || (f.Type == "ack" && f.ClientID == id)
		})
		if f.Type == "ack" {
			ack = f
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no send acknowledged after the broker came back: %s", f.raw)
		}
	}
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
