package gateway_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/rtstack/rtstack/commands"
	"github.com/rtstack/rtstack/events"
	"github.com/rtstack/rtstack/gateway"
	"github.com/rtstack/rtstack/infra/kafka"
	"github.com/rtstack/rtstack/infra/kafka/kafkatest"
	"github.com/rtstack/rtstack/internal/testsvc"
)

// gatedLog is the stack's log that holds the asynchronous appends issued to
// it until open, then issues them in the order they came. It counts the
// appends issued and not yet answered, and their peak.
type gatedLog struct {
	*kafka.Log
	cmds *commands.Handler

	outstanding, peak atomic.Int64

	mu     sync.Mutex // guards opened and held
	opened bool
	held   []func()
}

func (st *stack) gatedLog(t testing.TB) *gatedLog {
	t.Helper()
	g := &gatedLog{Log: kafka.NewLog(st.cl, st.codec, topic)}
	var err error
	if g.cmds, err = commands.NewHandler(commands.Config{Log: g, Authors: st.authors}); err != nil {
		t.Fatal(err)
	}
	return g
}

func (g *gatedLog) AppendAsync(ctx context.Context, ev events.Event, done func(events.Position, error)) {
	n := g.outstanding.Add(1)
	for p := g.peak.Load(); n > p && !g.peak.CompareAndSwap(p, n); p = g.peak.Load() {
	}
	issue := func() {
		g.Log.AppendAsync(ctx, ev, func(pos events.Position, err error) {
			g.outstanding.Add(-1)
			done(pos, err)
		})
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.opened {
		g.held = append(g.held, issue)
		return
	}
	issue()
}

// open issues the held appends in order and lets the next ones through.
func (g *gatedLog) open() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.opened = true
	for _, issue := range g.held {
		issue()
	}
	g.held = nil
}

func (g *gatedLog) heldCount() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.held)
}

func (g *gatedLog) awaitHeld(t testing.TB, n int) {
	t.Helper()
	testsvc.Eventually(t, waitFor, fmt.Sprintf("%d appends held", n), func() bool { return g.heldCount() == n })
}

// answers waits until every id has an ack or an error frame and returns
// them by id; it fails on a second answer to one id.
func (c *client) answers(ids []string) map[string]frame {
	c.t.Helper()
	want := map[string]bool{}
	for _, id := range ids {
		want[id] = true
	}
	var got map[string]frame
	c.await(fmt.Sprintf("answers to %d actions", len(ids)), func(fs []frame) bool {
		got = map[string]frame{}
		for _, f := range fs {
			id := f.ClientID
			if f.Type == "error" && f.Ref != nil {
				id = *f.Ref
			}
			if (f.Type != "ack" && f.Type != "error") || !want[id] {
				continue
			}
			if prev, again := got[id]; again {
				c.t.Fatalf("%s answered twice: %s and %s", id, prev.raw, f.raw)
			}
			got[id] = f
		}
		return len(got) == len(ids)
	})
	return got
}

// sendInterleaved sends n messages alternating between rooms without
// waiting for answers and returns the client ids in send order.
func (c *client) sendInterleaved(prefix string, n int, rooms ...string) []string {
	c.t.Helper()
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprint(prefix, i)
		c.send(map[string]any{"type": "send", "room": rooms[i%len(rooms)], "client_id": ids[i], "text": "text of " + ids[i]})
	}
	return ids
}

// readLog reads every record of the log, from its start to its end now.
func readLog(t testing.TB, st *stack) []events.Record {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	ends, err := kafka.EndOffsets(ctx, st.cl, topic)
	if err != nil {
		t.Fatal(err)
	}
	cl := kafkatest.Client(t, st.addr, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	next := map[int32]int64{}
	var out []events.Record
	for done := false; !done; {
		fs := cl.PollFetches(ctx)
		if err := fs.Err0(); err != nil {
			t.Fatalf("read the log: %v", err)
		}
		fs.EachRecord(func(r *kgo.Record) {
			rec, err := kafka.Decode(st.codec, r)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, rec)
			next[r.Partition] = r.Offset + 1
		})
		done = true
		for p, end := range ends {
			done = done && next[p] >= end
		}
	}
	return out
}

// sentBy returns the client ids of user's MessageSent records of each room,
// in log order.
func sentBy(recs []events.Record, user string) map[string][]string {
	out := map[string][]string{}
	for _, r := range recs {
		if m, ok := r.Event.(*events.MessageSent); ok && m.User == user {
			out[m.Room] = append(out[m.Room], m.ClientID)
		}
	}
	return out
}

// A connection's pipelined sends to two rooms, interleaved: each gets one
// ack, the log has each room's sends in the order they were sent, and many
// were in flight at once (held by the log) but never more than the bound.
func TestPipelinedSendsKeepOrderPerRoom(t *testing.T) {
	st := newStack(t, stackOpts{})
	gated := st.gatedLog(t)
	const bound, sends = 16, 200
	g := st.gateway(t, func(c *gateway.Config) { c.Commands, c.MaxInflight = gated.cmds, bound })
	alice := g.dial(t, "alice")
	alice.join("r1")
	alice.join("r2")
	ids := alice.sendInterleaved("p", sends, "r1", "r2")
	gated.awaitHeld(t, bound) // the reader waits for a slot: no more come
	gated.open()
	got := alice.answers(ids)
	want := map[string][]string{}
	for i, id := range ids {
		a := got[id]
		if a.Type != "ack" {
			t.Fatalf("%s answered %s, want an ack", id, a.raw)
		}
		room := []string{"r1", "r2"}[i%2]
		if a.MessageID != commands.MessageID(room, "alice", id) {
			t.Fatalf("ack %s names message %s, want the one of %s in %s", a.raw, a.MessageID, id, room)
		}
		want[room] = append(want[room], id)
	}
	if p := gated.peak.Load(); p != bound {
		t.Fatalf("at most %d appends were in flight, want exactly the bound %d", p, bound)
	}
	inLog := sentBy(readLog(t, st), "alice")
	for room, ids := range want {
		if fmt.Sprint(inLog[room]) != fmt.Sprint(ids) {
			t.Fatalf("log order of %s:\n%v\nwant send order:\n%v", room, inLog[room], ids)
		}
	}
}

// The bound holds per connection, is visible as a metric, and a frame over
// it waits (no error) until a slot frees.
func TestInflightBound(t *testing.T) {
	st := newStack(t, stackOpts{})
	gated := st.gatedLog(t)
	reg := prometheus.NewRegistry()
	const bound = 4
	g := st.gateway(t, func(c *gateway.Config) { c.Commands, c.MaxInflight, c.Registerer = gated.cmds, bound, reg })
	alice := g.dial(t, "alice")
	alice.join("r")
	ids := alice.sendInterleaved("b", 3*bound, "r")
	gated.awaitHeld(t, bound)
	testsvc.Eventually(t, waitFor, "actions_in_flight at the bound", func() bool {
		return gather(t, reg)["rtstack_gateway_actions_in_flight"] == bound
	})
	for _, f := range alice.await("frames so far", func([]frame) bool { return true }) {
		if f.Type == "error" || f.Type == "ack" {
			t.Fatalf("answered while every append was held: %s", f.raw)
		}
	}
	gated.open()
	for id, a := range alice.answers(ids) {
		if a.Type != "ack" {
			t.Fatalf("%s answered %s, want an ack", id, a.raw)
		}
	}
	if p := gated.peak.Load(); p > bound {
		t.Fatalf("%d appends in flight on one connection, over the bound %d", p, bound)
	}
	testsvc.Eventually(t, waitFor, "actions_in_flight back to 0", func() bool {
		return gather(t, reg)["rtstack_gateway_actions_in_flight"] == 0
	})
}

// Many actions held in flight across Shutdown in two rooms: each is acked
// before the 1001 close.
func TestShutdownWaitsForManyInflight(t *testing.T) {
	st := newStack(t, stackOpts{})
	gated := st.gatedLog(t)
	g := st.gateway(t, func(c *gateway.Config) { c.Commands = gated.cmds })
	alice := g.dial(t, "alice")
	alice.join("r1")
	alice.join("r2")
	const n = 40
	ids := alice.sendInterleaved("s", n, "r1", "r2")
	gated.awaitHeld(t, n)
	acked := map[string]bool{}
	for _, a := range of(shutdownReleasing(t, g, gated, alice), "ack", "error") {
		if a.Type != "ack" {
			t.Fatalf("answered %s, want an ack", a.raw)
		}
		acked[a.ClientID] = true
	}
	for _, id := range ids {
		if !acked[id] {
			t.Fatalf("%s was not acked before the close (%d of %d were)", id, len(acked), n)
		}
	}
}

// Many sends in flight while the broker goes away and comes back: every one
// is answered; an acked one is in the log at its position, an errored one
// is resent with the same client_id and acked then.
func TestPipelinedSendsAcrossBrokerCut(t *testing.T) {
	g, b, restart := outageStack(t)
	alice := g.dial(t, "alice")
	alice.join("r1")
	alice.join("r2")
	before := alice.sendInterleaved("a", 40, "r1", "r2")
	alice.expect("a first ack", func(f frame) bool { return f.Type == "ack" })
	b.Close()
	during := alice.sendInterleaved("d", 40, "r1", "r2")
	ids := append(before, during...)
	got := alice.answers(ids)

	restart()
	var errored []string
	for _, id := range ids {
		switch f := got[id]; {
		case f.Type == "ack":
		case f.Code == gateway.CodeUnavailable:
			errored = append(errored, id)
		default:
			t.Fatalf("%s answered %s, want an ack or %s", id, f.raw, gateway.CodeUnavailable)
		}
	}
	if len(errored) == 0 {
		t.Fatal("no send was refused while the broker was away")
	}
	alice.awaitSendWorks("r1", "probe-") // then resend each refused one with its client_id
	for _, id := range errored {
		alice.send(map[string]any{"type": "send", "room": roomOf(ids, id), "client_id": id, "text": "text of " + id})
	}
	for _, id := range errored {
		got[id] = alice.expect("ack of the resent "+id, func(f frame) bool { return f.Type == "ack" && f.ClientID == id })
	}
	byPos := map[events.Position]*events.MessageSent{}
	for _, r := range readLog(t, g.st) {
		if m, ok := r.Event.(*events.MessageSent); ok {
			byPos[r.Position] = m
		}
	}
	for _, id := range ids {
		a := got[id]
		m := byPos[a.pos()]
		if m == nil || m.ClientID != id || m.MessageID != a.MessageID {
			t.Fatalf("ack %s: the log has %+v at %v", a.raw, m, a.pos())
		}
	}
}

func roomOf(ids []string, id string) string {
	for i, x := range ids {
		if x == id {
			return []string{"r1", "r2"}[i%2]
		}
	}
	return ""
}
