package presence_test

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/rtstack/rtstack/gateway/presence"
	"github.com/rtstack/rtstack/internal/testsvc"
)

const (
	// Short enough for quick tests, with room for a loaded CI machine: a
	// heartbeat may be up to TTL-Heartbeat late before presence flaps.
	testTTL       = 2 * time.Second
	testHeartbeat = 200 * time.Millisecond
	wait          = 10 * time.Second
)

type change struct {
	room  string
	users []string
}

func (c change) String() string { return c.room + "[" + strings.Join(c.users, ",") + "]" }

type delivery struct {
	user  string
	frame string
}

// gw is one running Tracker with what its callbacks received.
type gw struct {
	*presence.Tracker
	changes    chan change
	welcomes   chan change // room + the list, user first
	deliveries chan delivery
	relayed    chan delivery // room + frame
	stop       func()
}

func newTracker(t *testing.T, rdb *redis.Client, prefix, id string, reg ...prometheus.Registerer) *presence.Tracker {
	t.Helper()
	cfg := presence.Config{Redis: rdb, Prefix: prefix, TTL: testTTL, Heartbeat: testHeartbeat, GatewayID: id,
		Logger: slog.New(slog.DiscardHandler)}
	if len(reg) > 0 {
		cfg.Registerer = reg[0]
	}
	tr, err := presence.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

// start runs tr until the test ends (or stop is called) and waits until it
// is subscribed.
func start(t *testing.T, tr *presence.Tracker) *gw {
	t.Helper()
	g := &gw{Tracker: tr, changes: make(chan change, 100), welcomes: make(chan change, 100), deliveries: make(chan delivery, 100),
		relayed: make(chan delivery, 100)}
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan struct{}, 10)
	done := make(chan error, 1)
	go func() {
		done <- tr.Run(ctx,
			func(room string, users []string) { g.changes <- change{room, users} },
			presence.Deliver(func(user string, frame []byte) bool {
				g.deliveries <- delivery{user, string(frame)}
				return true
			}),
			presence.Welcome(func(room, user string, users []string) {
				g.welcomes <- change{room, append([]string{user}, users...)}
			}),
			presence.Relay(func(room string, frame []byte) { g.relayed <- delivery{room, string(frame)} }),
			presence.Subscribed(func() { ready <- struct{}{} }))
	}()
	stopped := false
	g.stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}
	t.Cleanup(g.stop)
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("Run returned before subscribing: %v", err)
	case <-time.After(wait):
		t.Fatal("Run did not subscribe")
	}
	return g
}

func setup(t testing.TB) (*redis.Client, string) {
	t.Helper()
	return testsvc.Redis(t)
}

// next returns the next change, failing after a deadline.
func (g *gw) next(t *testing.T) change {
	t.Helper()
	select {
	case c := <-g.changes:
		return c
	case <-time.After(wait):
		t.Fatal("no presence change")
		return change{}
	}
}

func (g *gw) expect(t *testing.T, room string, users ...string) {
	t.Helper()
	c := g.next(t)
	if users == nil {
		users = []string{}
	}
	if c.room != room || !slices.Equal(c.users, users) {
		t.Fatalf("change = %v, want %v", c, change{room, users})
	}
}

// until skips changes until one equals room/users.
func (g *gw) until(t *testing.T, room string, users ...string) {
	t.Helper()
	for {
		c := g.next(t)
		if c.room == room && slices.Equal(c.users, users) {
			return
		}
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func online(t *testing.T, tr *presence.Tracker, room string, want ...string) {
	t.Helper()
	got, err := tr.Online(context.Background(), room)
	must(t, err)
	if want == nil {
		want = []string{}
	}
	if got == nil {
		got = []string{}
	}
	if !slices.Equal(got, want) {
		t.Fatalf("Online(%s) = %v, want %v", room, got, want)
	}
}

func TestTabsCountOnce(t *testing.T) {
	rdb, prefix := setup(t)
	ctx := context.Background()
	a := start(t, newTracker(t, rdb, prefix, "a"))

	must(t, a.Join(ctx, "r", "alice", "c1"))
	a.expect(t, "r", "alice")
	must(t, a.Join(ctx, "r", "alice", "c2"))
	// The 2nd tab is welcomed with the room's list; the room hears nothing.
	select {
	case w := <-a.welcomes:
		if w.room != "r" || !slices.Equal(w.users, []string{"alice", "alice"}) {
			t.Fatalf("welcome = %v, want alice in r[alice]", w)
		}
	case <-time.After(wait):
		t.Fatal("2nd tab not welcomed")
	}
	must(t, a.Join(ctx, "r", "alice", "c3"))
	online(t, a.Tracker, "r", "alice")
	// Announcements arrive in publication order: had the 2nd or 3rd tab
	// announced anything, it would come before bob's join.
	must(t, a.Join(ctx, "r", "bob", "c4"))
	a.expect(t, "r", "alice", "bob")

	must(t, a.Leave(ctx, "r", "alice", "c3"))
	must(t, a.Leave(ctx, "r", "alice", "c2"))
	online(t, a.Tracker, "r", "alice", "bob")
	must(t, a.Leave(ctx, "r", "bob", "c4"))
	a.expect(t, "r", "alice")
	must(t, a.Leave(ctx, "r", "alice", "c1"))
	// The room has no local connection left: the last transition is not
	// reported to this gateway, but Redis agrees nobody is there.
	online(t, a.Tracker, "r")
	ok, err := a.UserOnline(ctx, "alice")
	must(t, err)
	if ok {
		t.Fatal("alice still online after closing every tab")
	}
	// Leaving twice is harmless.
	must(t, a.Leave(ctx, "r", "alice", "c1"))
}

func TestTwoGateways(t *testing.T) {
	rdb, prefix := setup(t)
	ctx := context.Background()
	a := start(t, newTracker(t, rdb, prefix, "a"))
	b := start(t, newTracker(t, rdb, prefix, "b"))

	must(t, a.Join(ctx, "r", "alice", "a1"))
	a.expect(t, "r", "alice")
	must(t, b.Join(ctx, "r", "bob", "b1"))
	a.expect(t, "r", "alice", "bob")
	// b may still see alice's own announcement, published before b held a
	// connection in r but delivered after; the lists only get newer.
	b.until(t, "r", "alice", "bob")

	// alice opens a tab on gateway b too: she counts once, nothing is
	// announced; carol's join is the marker that proves it.
	must(t, b.Join(ctx, "r", "alice", "b2"))
	online(t, b.Tracker, "r", "alice", "bob")
	must(t, a.Join(ctx, "r", "carol", "a2"))
	a.expect(t, "r", "alice", "bob", "carol")
	b.expect(t, "r", "alice", "bob", "carol")

	// alice closes her tab on a: still online through b.
	must(t, a.Leave(ctx, "r", "alice", "a1"))
	must(t, a.Leave(ctx, "r", "carol", "a2"))
	b.expect(t, "r", "alice", "bob")
	must(t, b.Leave(ctx, "r", "alice", "b2"))
	b.expect(t, "r", "bob")

	// Rooms are independent.
	must(t, a.Join(ctx, "other", "alice", "a3"))
	a.expect(t, "other", "alice")
	online(t, b.Tracker, "r", "bob")
}

func TestCrashedGatewayHeals(t *testing.T) {
	rdb, prefix := setup(t)
	ctx := context.Background()
	reg := prometheus.NewRegistry()
	a := start(t, newTracker(t, rdb, prefix, "a", reg))
	crashed := start(t, newTracker(t, rdb, prefix, "crashed"))

	must(t, a.Join(ctx, "r", "alice", "a1"))
	a.expect(t, "r", "alice")
	must(t, crashed.Join(ctx, "r", "carol", "x1"))
	must(t, crashed.Join(ctx, "r", "carol", "x2"))
	must(t, crashed.Join(ctx, "elsewhere", "carol", "x3"))
	a.expect(t, "r", "alice", "carol")

	// Heartbeats keep carol online well past the TTL while her gateway runs.
	deadline := time.Now().Add(testTTL + 500*time.Millisecond)
	for time.Now().Before(deadline) {
		online(t, a.Tracker, "r", "alice", "carol")
		time.Sleep(testHeartbeat)
	}
	select {
	case c := <-a.changes:
		t.Fatalf("unexpected change while carol's gateway runs: %v", c)
	default:
	}

	crashed.stop() // no Leave: as if the process died
	a.expect(t, "r", "alice")
	online(t, a.Tracker, "r", "alice")
	online(t, a.Tracker, "elsewhere")
	ok, err := a.UserOnline(ctx, "carol")
	must(t, err)
	if ok {
		t.Fatal("carol online after her gateway crashed")
	}
	// Nothing of carol is left in Redis once the sweep is through.
	for deadline := time.Now().Add(wait); ; time.Sleep(20 * time.Millisecond) {
		keys, err := rdb.Keys(ctx, prefix+"*carol*").Result()
		must(t, err)
		if len(keys) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("keys left after the sweep: %v", keys)
		}
	}
	// a swept carol out of both rooms: two transitions.
	if got := sweepTransitions(t, reg); got != 2 {
		t.Fatalf("sweep transitions = %v, want 2", got)
	}
	n, err := rdb.ZCard(ctx, prefix+"presence:expiry").Result()
	must(t, err)
	if n != 1 {
		t.Fatalf("expiry index has %d entries, want 1 (alice)", n)
	}
}

func TestUserOnline(t *testing.T) {
	rdb, prefix := setup(t)
	ctx := context.Background()
	a := newTracker(t, rdb, prefix, "a")
	b := newTracker(t, rdb, prefix, "b")
	must(t, a.Join(ctx, "r1", "alice", "c1"))
	must(t, a.Join(ctx, "r2", "alice", "c1"))
	for _, tr := range []*presence.Tracker{a, b} {
		ok, err := tr.UserOnline(ctx, "alice")
		must(t, err)
		if !ok {
			t.Fatal("alice offline after joining")
		}
		ok, err = tr.UserOnline(ctx, "bob")
		must(t, err)
		if ok {
			t.Fatal("bob online without joining")
		}
	}
	must(t, a.Leave(ctx, "r1", "alice", "c1"))
	ok, _ := b.UserOnline(ctx, "alice")
	if !ok {
		t.Fatal("alice offline while still in r2")
	}
	must(t, a.Leave(ctx, "r2", "alice", "c1"))
	ok, _ = b.UserOnline(ctx, "alice")
	if ok {
		t.Fatal("alice online after leaving every room")
	}
}

func TestNotifyReachesHoldingGateway(t *testing.T) {
	rdb, prefix := setup(t)
	ctx := context.Background()
	a := start(t, newTracker(t, rdb, prefix, "a"))
	b := start(t, newTracker(t, rdb, prefix, "b"))
	must(t, b.Join(ctx, "r", "alice", "b1"))
	must(t, a.Join(ctx, "r", "bob", "a1"))

	must(t, a.Notify(ctx, "alice", []byte(`{"type":"mention"}`)))
	must(t, a.Notify(ctx, "nobody", []byte(`lost`)))
	must(t, b.Notify(ctx, "bob", []byte(`{"type":"for bob"}`)))

	expect := func(g *gw, want delivery) {
		t.Helper()
		select {
		case d := <-g.deliveries:
			if d != want {
				t.Fatalf("delivered %+v, want %+v", d, want)
			}
		case <-time.After(wait):
			t.Fatalf("no delivery of %+v", want)
		}
	}
	// Each gateway gets only its own user's frame: bob's frame, published
	// last, is the first thing a sees.
	expect(b, delivery{"alice", `{"type":"mention"}`})
	expect(a, delivery{"bob", `{"type":"for bob"}`})
	must(t, b.Notify(ctx, "alice", []byte("second")))
	expect(b, delivery{"alice", "second"})
}

func TestSignalReachesGatewaysHoldingTheRoom(t *testing.T) {
	rdb, prefix := setup(t)
	ctx := context.Background()
	a := start(t, newTracker(t, rdb, prefix, "a"))
	b := start(t, newTracker(t, rdb, prefix, "b"))
	c := start(t, newTracker(t, rdb, prefix, "c"))
	must(t, a.Join(ctx, "r", "alice", "a1"))
	must(t, b.Join(ctx, "r", "bob", "b1"))
	must(t, c.Join(ctx, "other", "carol", "c1"))

	typing := `{"type":"typing","room":"r","user":"alice"}`
	must(t, a.Signal(ctx, "r", []byte(typing)))
	must(t, c.Signal(ctx, "other", []byte(`{"type":"typing","room":"other","user":"carol"}`)))
	for _, g := range []*gw{a, b} { // the sender's own gateway too
		select {
		case d := <-g.relayed:
			if d != (delivery{"r", typing}) {
				t.Fatalf("relayed %+v, want %s in r", d, typing)
			}
		case <-time.After(wait):
			t.Fatal("signal not relayed to a gateway holding r")
		}
	}
	// c holds only "other": it gets its own room's signal and never r's.
	select {
	case d := <-c.relayed:
		if d.user != "other" {
			t.Fatalf("c relayed %+v, a room it does not hold", d)
		}
	case <-time.After(wait):
		t.Fatal("signal of other not relayed to c")
	}
	select {
	case d := <-c.relayed:
		t.Fatalf("c relayed %+v too", d)
	default:
	}
}

func TestResubscribeResyncs(t *testing.T) {
	rdb, prefix := setup(t)
	ctx := context.Background()
	tr := newTracker(t, rdb, prefix, "a")
	// Joined before Run: the first subscription reports the room's list.
	must(t, tr.Join(ctx, "r", "alice", "c1"))
	g := start(t, tr)
	g.expect(t, "r", "alice")
}

func TestRefreshReRegistersSweptConnection(t *testing.T) {
	rdb, prefix := setup(t)
	ctx := context.Background()
	a := start(t, newTracker(t, rdb, prefix, "a"))
	must(t, a.Join(ctx, "r", "alice", "c1"))
	a.expect(t, "r", "alice")
	// Redis lost the presence keys (say it restarted): the next heartbeat
	// puts the connection back and announces it.
	keys, err := rdb.Keys(ctx, prefix+"presence:*").Result()
	must(t, err)
	must(t, rdb.Del(ctx, keys...).Err())
	a.expect(t, "r", "alice")
	online(t, a.Tracker, "r", "alice")
}

func TestConfigValidate(t *testing.T) {
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"})
	defer rdb.Close()
	tests := []struct {
		name string
		cfg  presence.Config
		want string
	}{
		{"empty", presence.Config{}, "Redis is required"},
		{"no id", presence.Config{Redis: rdb}, "GatewayID is required"},
		{"heartbeat above ttl", presence.Config{Redis: rdb, GatewayID: "a", TTL: time.Second, Heartbeat: 2 * time.Second}, "must be below TTL"},
		{"ttl under the default heartbeat", presence.Config{Redis: rdb, GatewayID: "a", TTL: 3 * time.Second}, "Heartbeat 5s must be below TTL 3s"},
		{"ok", presence.Config{Redis: rdb, GatewayID: "a"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := presence.New(tt.cfg)
			if got := fmt.Sprint(err); tt.want == "" && err != nil || tt.want != "" && !strings.Contains(got, tt.want) {
				t.Fatalf("New = %v, want %q", err, tt.want)
			}
		})
	}
}

func sweepTransitions(t *testing.T, reg *prometheus.Registry) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	must(t, err)
	for _, mf := range mfs {
		if mf.GetName() != "rtstack_presence_transitions_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			if len(m.GetLabel()) == 1 && m.GetLabel()[0].GetValue() == "sweep" {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}
