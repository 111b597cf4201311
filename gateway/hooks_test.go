package gateway_test

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/rtstack/rtstack/gateway"
	"github.com/rtstack/rtstack/infra/kafka"
	"github.com/rtstack/rtstack/internal/testsvc"
	"github.com/rtstack/rtstack/projections/view"
)

// Shutdown closes every client with 1001, refuses new ones, and can be
// called again.
func TestShutdown(t *testing.T) {
	st := newStack(t, stackOpts{})
	g := st.gateway(t, nil)
	alice := g.dial(t, "alice")
	alice.join("r")
	ack := alice.say("r", "c1", "last words")
	if m := alice.messages("r", 1)[0]; m.MessageID != ack.MessageID {
		t.Fatalf("message %s, ack %s", m.raw, ack.raw)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := g.srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if code := alice.closeCode(); code != websocket.CloseGoingAway {
		t.Fatalf("close code %d, want %d", code, websocket.CloseGoingAway)
	}
	_, resp, err := websocket.DefaultDialer.Dial(g.url(g.token(t, "bob")), nil)
	if err == nil || resp == nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("dial after shutdown: %v %v, want 503", err, resp)
	}
	_ = resp.Body.Close()
	if err := g.srv.Shutdown(ctx); err != nil {
		t.Fatalf("second shutdown: %v", err)
	}
}

type fakeBoards struct {
	mu      sync.Mutex // guards entries, total
	entries []view.ScoreEntry
	total   int64
}

func (b *fakeBoards) Leaderboard(_ context.Context, n int) ([]view.ScoreEntry, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.entries[:min(n, len(b.entries))]), nil
}

func (b *fakeBoards) Counters(_ context.Context, room string) (view.Counters, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return view.Counters{Room: room, Total: b.total, Members: 2}, nil
}

// Subscribing sends a snapshot, then the board again when it changed.
func TestSubscribeBoards(t *testing.T) {
	st := newStack(t, stackOpts{})
	boards := &fakeBoards{entries: []view.ScoreEntry{{User: "alice", Score: 3}}, total: 7}
	g := st.gateway(t, func(c *gateway.Config) { c.Boards, c.BoardInterval = boards, 20*time.Millisecond })
	c := g.dial(t, "alice")
	c.send(map[string]any{"type": "subscribe", "channel": "leaderboard"})
	snap := c.expectType("leaderboard")
	if !strings.Contains(snap.raw, `"entries":[{"user":"alice","score":3}]`) {
		t.Fatalf("snapshot %s", snap.raw)
	}
	c.send(map[string]any{"type": "subscribe", "channel": "counters", "room": "room-1"})
	cs := c.expectType("counters")
	if !strings.Contains(cs.raw, `"room":"room-1"`) || !strings.Contains(cs.raw, `"total":7`) {
		t.Fatalf("counters snapshot %s", cs.raw)
	}
	boards.mu.Lock()
	boards.entries = append(boards.entries, view.ScoreEntry{User: "bob", Score: 1})
	boards.total = 8
	boards.mu.Unlock()
	upd := c.expectType("leaderboard")
	if !strings.Contains(upd.raw, `{"user":"bob","score":1}`) {
		t.Fatalf("update %s", upd.raw)
	}
	if cs := c.expectType("counters"); !strings.Contains(cs.raw, `"total":8`) {
		t.Fatalf("counters update %s", cs.raw)
	}
	// Unchanged boards are not sent again: after a marker round trip, no
	// third leaderboard frame.
	c.join("quiet")
	time.Sleep(100 * time.Millisecond) // several board intervals; asserting an absence
	if n := len(of(c.await("all", func([]frame) bool { return true }), "leaderboard")); n != 2 {
		t.Fatalf("%d leaderboard frames, want 2 (snapshot and one change)", n)
	}
}

// A newcomer's snapshot does not stand in for the update the board's
// other subscribers have not been sent yet.
func TestBoardChangeReachesSubscribersAfterANewcomer(t *testing.T) {
	st := newStack(t, stackOpts{})
	boards := &fakeBoards{entries: []view.ScoreEntry{{User: "alice", Score: 3}}}
	g := st.gateway(t, func(c *gateway.Config) { c.Boards, c.BoardInterval = boards, 300*time.Millisecond })
	alice, bob := g.dial(t, "alice"), g.dial(t, "bob")
	alice.send(map[string]any{"type": "subscribe", "channel": "leaderboard"})
	alice.expectType("leaderboard")
	boards.mu.Lock()
	boards.entries = []view.ScoreEntry{{User: "alice", Score: 4}}
	boards.mu.Unlock()
	// bob subscribes before the next read: his snapshot has score 4.
	bob.send(map[string]any{"type": "subscribe", "channel": "leaderboard"})
	if snap := bob.expectType("leaderboard"); !strings.Contains(snap.raw, `"score":4`) {
		t.Fatalf("bob's snapshot %s", snap.raw)
	}
	if upd := alice.expectType("leaderboard"); !strings.Contains(upd.raw, `"score":4`) {
		t.Fatalf("alice's update %s, want score 4", upd.raw)
	}
}

type fakePresence struct {
	mu    sync.Mutex // guards calls
	calls []string
}

func (p *fakePresence) record(s string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.calls = append(p.calls, s)
}

func (p *fakePresence) Join(_ context.Context, room, user, _ string) error {
	p.record("join " + room + " " + user)
	return nil
}

func (p *fakePresence) Leave(_ context.Context, room, user, _ string) error {
	p.record("leave " + room + " " + user)
	return nil
}

func (p *fakePresence) has(s string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Contains(p.calls, s)
}

// The presence hook is called on join, leave and disconnect, and the
// gateway delivers presence and per-user frames.
func TestPresenceHooks(t *testing.T) {
	st := newStack(t, stackOpts{})
	pres := &fakePresence{}
	g := st.gateway(t, func(c *gateway.Config) { c.Presence = pres })
	alice, bob := g.dial(t, "alice"), g.dial(t, "bob")
	alice.join("r")
	bob.join("r")
	alice.send(map[string]any{"type": "leave", "room": "r", "client_id": "l"})
	alice.expect("leave ack", func(f frame) bool { return f.Type == "ack" && f.ClientID == "l" })
	_ = bob.ws.Close()
	deadline := time.Now().Add(waitFor)
	for !pres.has("leave r bob") {
		if time.Now().After(deadline) {
			t.Fatalf("no Leave on disconnect; calls %v", pres.calls)
		}
		time.Sleep(10 * time.Millisecond)
	}
	for _, want := range []string{"join r alice", "join r bob", "leave r alice"} {
		if !pres.has(want) {
			t.Errorf("presence calls lack %q", want)
		}
	}

	carol := g.dial(t, "carol")
	carol.join("r")
	g.srv.BroadcastPresence("r", []string{"carol", "dave"})
	p := carol.expectType("presence")
	if p.Room != "r" || !slices.Equal(p.Users, []string{"carol", "dave"}) {
		t.Fatalf("presence frame %s", p.raw)
	}
	if !g.srv.DeliverToUser("carol", []byte("{\"type\":\"mention\",\n \"room\":\"r\"}")) {
		t.Fatal("DeliverToUser found no connection of carol")
	}
	if m := carol.expectType("mention"); m.Room != "r" {
		t.Fatalf("mention frame %s", m.raw)
	}
	if g.srv.DeliverToUser("nobody", []byte(`{"type":"mention"}`)) {
		t.Error("DeliverToUser reported a delivery to a user with no connection")
	}
	if g.srv.DeliverToUser("carol", []byte(`not json`)) {
		t.Error("DeliverToUser accepted a frame that is not a JSON object")
	}
}

// The metrics land in the injected registerer.
func TestMetricsRegistered(t *testing.T) {
	st, g, reg := meteredGateway(t)
	alice := g.dial(t, "alice")
	alice.join("r")
	alice.say("r", "c", "counted")
	alice.messages("r", 1)
	// The counters are bumped right after the frames are queued: poll.
	deadline := time.Now().Add(waitFor)
	for {
		got := gather(t, reg)
		if got["rtstack_gateway_connections"] == 1 && got["rtstack_gateway_deliveries_total"] >= 2 && got["rtstack_gateway_append_seconds"] >= 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("metrics %v: want 1 connection, deliveries and append latencies of the join and the send", got)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if _, err := gateway.New(gateway.Config{Kafka: kafka.ClientConfig{Brokers: []string{st.addr}}, Codec: st.codec, Commands: st.cmds, Keys: st.keys, Registerer: reg}); err == nil {
		t.Error("a second gateway on the same registerer should be refused, not panic")
	}
}

// An operator sees the live fanout's latency and what recoveries read.
func TestFanoutAndRecoveryMetricsMove(t *testing.T) {
	_, g, reg := meteredGateway(t)
	alice := g.dial(t, "alice")
	alice.join("r")
	for _, id := range []string{"m1", "m2", "m3"} {
		alice.say("r", id, "text of "+id)
	}
	first := alice.messages("r", 3)[0]
	// Observed right after the frames are queued: wait for it.
	testsvc.Eventually(t, waitFor, "fanout latency observed", func() bool {
		return gather(t, reg)["rtstack_gateway_fanout_seconds"] >= 1
	})
	bob := g.dial(t, "bob")
	bob.send(map[string]any{"type": "join", "room": "r", "since": map[string]any{"partition": first.Partition, "offset": first.Offset}})
	if n := len(bob.messages("r", 2)); n != 2 {
		t.Fatalf("bob recovered %d messages, want 2", n)
	}
	testsvc.Eventually(t, waitFor, "recovery metrics", func() bool {
		got := gather(t, reg)
		return got["rtstack_gateway_recovery_seconds"] == 1 && got["rtstack_gateway_recovery_records_total"] >= 2
	})
}

// meteredGateway is a gateway whose metrics land in reg.
func meteredGateway(t *testing.T) (st *stack, g *gw, reg *prometheus.Registry) {
	st = newStack(t, stackOpts{})
	reg = prometheus.NewRegistry()
	return st, st.gateway(t, func(c *gateway.Config) { c.Registerer = reg }), reg
}

// gather sums each metric family of reg over its series (histograms by
// sample count).
func gather(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			switch {
			case m.GetGauge() != nil:
				got[mf.GetName()] += m.GetGauge().GetValue()
			case m.GetCounter() != nil:
				got[mf.GetName()] += m.GetCounter().GetValue()
			case m.GetHistogram() != nil:
				got[mf.GetName()] += float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	return got
}

// Shutdown lets an append in flight finish and its ack reach the client
// before the 1001 close.
func TestShutdownWaitsForInflightAppend(t *testing.T) {
	st := newStack(t, stackOpts{})
	gated := st.gatedLog(t)
	g := st.gateway(t, func(c *gateway.Config) { c.Commands = gated.cmds })
	alice := g.dial(t, "alice")
	alice.join("r")
	alice.send(map[string]any{"type": "send", "room": "r", "client_id": "inflight", "text": "almost too late"})
	gated.awaitHeld(t, 1)
	if acks := of(shutdownReleasing(t, g, gated, alice), "ack"); len(acks) != 1 || acks[0].ClientID != "inflight" {
		t.Fatalf("acks before close: %v, want the in-flight send's", raws(acks))
	}
}

// shutdownReleasing shuts g down, releasing the appends gated holds once
// Shutdown is under way, and returns what c got before its close, which
// must be 1001 going away.
func shutdownReleasing(t *testing.T, g *gw, gated *gatedLog, c *client) []frame {
	t.Helper()
	done := startShutdown(t, g)
	gated.open()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if code := c.closeCode(); code != websocket.CloseGoingAway {
		t.Fatalf("close code %d, want %d", code, websocket.CloseGoingAway)
	}
	return c.await("all", func([]frame) bool { return true })
}

// startShutdown starts g's Shutdown and returns its outcome's channel once
// Shutdown is under way (new clients get 503).
func startShutdown(t *testing.T, g *gw) <-chan error {
	t.Helper()
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		done <- g.srv.Shutdown(ctx)
	}()
	deadline := time.Now().Add(waitFor)
	for {
		_, resp, err := websocket.DefaultDialer.Dial(g.url(g.token(t, "late")), nil)
		if resp != nil {
			_ = resp.Body.Close()
		}
		if err != nil && resp != nil && resp.StatusCode == http.StatusServiceUnavailable {
			return done
		}
		if time.Now().After(deadline) {
			t.Fatal("shutdown did not start")
		}
		time.Sleep(5 * time.Millisecond)
	}
}
