package gateway_test

import (
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/gorilla/websocket"

	"github.com/rtstack/rtstack/gateway"
	"github.com/rtstack/rtstack/gateway/auth"
	"github.com/rtstack/rtstack/internal/testsvc"
)

// signed is a token of user with a rooms claim (nil: none) valid for ttl.
func (g *gw) signed(t testing.TB, user string, rooms []string, ttl time.Duration) string {
	t.Helper()
	tok, err := g.st.keys.SignClaims(auth.Claims{Rooms: rooms, RegisteredClaims: jwt.RegisteredClaims{Subject: user}}, ttl)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// TestRoomsClaim: a token with a rooms claim may join, recover, act in and
// subscribe to the counters of matching rooms only; anything else is error
// forbidden and appends nothing. A token without the claim is not limited.
func TestRoomsClaim(t *testing.T) {
	st := newStack(t, stackOpts{})
	g := st.gateway(t, func(c *gateway.Config) { c.Boards = &fakeBoards{} })
	alice := g.dialToken(t, "alice", g.signed(t, "alice", []string{"lobby", "team-a.*"}, time.Hour), websocket.DefaultDialer, true)
	bob := g.dial(t, "bob") // no claim: every room

	alice.join("lobby")
	alice.join("team-a.dev")
	alice.say("team-a.dev", "a1", "hello team")

	bob.join("secret")
	secret := bob.say("secret", "b1", "for bob's eyes")

	for _, fr := range []map[string]any{
		{"type": "join", "room": "secret"},
		{"type": "join", "room": "team-b.dev"},
		{"type": "join", "room": "secret", "since": map[string]any{"partition": secret.Partition, "offset": 0}},
		{"type": "send", "room": "secret", "text": "let me in"},
		{"type": "edit", "room": "secret", "message_id": secret.MessageID, "text": "x"},
		{"type": "delete", "room": "secret", "message_id": secret.MessageID},
		{"type": "react", "room": "secret", "message_id": secret.MessageID, "emoji": "👍"},
		{"type": "subscribe", "channel": "counters", "room": "secret"},
	} {
		fr["client_id"] = "f"
		alice.send(fr)
		if e := alice.expectError("forbidden"); e.Ref == nil || *e.Ref != "f" {
			t.Fatalf("%v: error %s without its ref", fr, e.raw)
		}
	}
	// Allowed rooms still work, and counters of an allowed room are served.
	alice.send(map[string]any{"type": "subscribe", "channel": "counters", "room": "lobby"})
	alice.expectType("counters")
	alice.say("lobby", "a2", "still here")
	// Nothing of the secret room reached alice, and her refused frames
	// appended nothing: bob's next message follows his first directly.
	bob.say("secret", "b2", "again")
	msgs := bob.messages("secret", 2)
	if msgs[1].Offset != msgs[0].Offset+1 {
		t.Fatalf("secret room offsets %d then %d: something was appended between", msgs[0].Offset, msgs[1].Offset)
	}
	for _, f := range alice.await("own frames", func([]frame) bool { return true }) {
		if f.Room == "secret" && f.Type != "error" {
			t.Fatalf("alice got a frame of the secret room: %s", f.raw)
		}
	}
}

// TestNotificationHonoursRoomsClaim: a frame for a user about a room goes
// only to that user's connections whose token allows the room.
func TestNotificationHonoursRoomsClaim(t *testing.T) {
	st := newStack(t, stackOpts{})
	g := st.gateway(t, nil)
	limited := g.dialToken(t, "carol", g.signed(t, "carol", []string{"lobby"}, time.Hour), websocket.DefaultDialer, true)
	open := g.dial(t, "carol")
	onlyLimited := g.dialToken(t, "dave", g.signed(t, "dave", []string{"lobby"}, time.Hour), websocket.DefaultDialer, true)
	// An answered frame proves the server registered the connection: the
	// upgrade returns before that, and DeliverToUser only sees registered ones.
	for _, c := range []*client{limited, open, onlyLimited} {
		c.send(map[string]any{"type": "are-you-there"})
		c.expectError("unknown_type")
	}

	if !g.srv.DeliverToUser("carol", []byte(`{"type":"notification","kind":"mention","room":"secret","message_id":"m1"}`)) {
		t.Fatal("no delivery to carol's unlimited connection")
	}
	if g.srv.DeliverToUser("dave", []byte(`{"type":"notification","kind":"mention","room":"secret","message_id":"m2"}`)) {
		t.Fatal("delivered to dave, whose only token does not allow the room")
	}
	g.srv.DeliverToUser("carol", []byte(`{"type":"notification","kind":"mention","room":"lobby","message_id":"m3"}`))
	g.srv.DeliverToUser("dave", []byte(`{"type":"notification","kind":"mention","room":"lobby","message_id":"m4"}`))

	if f := open.expectType("notification"); f.MessageID != "m1" {
		t.Fatalf("unlimited connection got %s first, want m1", f.raw)
	}
	// Each connection's frames come in order: receiving the lobby one first
	// proves the secret one was never queued.
	if f := limited.expectType("notification"); f.MessageID != "m3" {
		t.Fatalf("limited connection got %s, want only the lobby notification m3", f.raw)
	}
	if f := onlyLimited.expectType("notification"); f.MessageID != "m4" {
		t.Fatalf("dave got %s, want only the lobby notification m4", f.raw)
	}
}

// TestTokenExpiresOnOpenConnection: TokenWarning before exp the server
// sends token_expiring; at exp it closes with 4001 "token expired".
func TestTokenExpiresOnOpenConnection(t *testing.T) {
	st := newStack(t, stackOpts{})
	g := st.gateway(t, func(c *gateway.Config) { c.TokenWarning = time.Second })
	tok := g.signed(t, "alice", nil, 3*time.Second)
	claims, err := st.keys.Verify(tok)
	if err != nil {
		t.Fatal(err)
	}
	exp := claims.Expiry()
	alice := g.dialToken(t, "alice", tok, websocket.DefaultDialer, true)
	alice.join("lobby") // the connection works until then

	warn := alice.expectType("token_expiring")
	warnedAt := time.Now()
	if warn.InMS <= 0 || warn.InMS > 1000 {
		t.Fatalf("token_expiring in_ms = %d, want within the 1s warning", warn.InMS)
	}
	if warnedAt.Before(exp.Add(-1100 * time.Millisecond)) {
		t.Fatalf("warned %v before exp, want about the 1s warning", exp.Sub(warnedAt))
	}
	ce := alice.awaitClose()
	if ce.Code != gateway.CloseTokenExpired || ce.Text != "token expired" {
		t.Fatalf("closed with %d %q, want 4001 token expired", ce.Code, ce.Text)
	}
	if now := time.Now(); now.Before(exp) {
		t.Fatalf("closed %v before exp", exp.Sub(now))
	}
}

// TestTokenRefresh: a refresh with a token of the same sub moves the
// expiry (the connection outlives the old exp); a refresh with a bad token
// or another user's is refused and the old expiry stays; a refresh whose
// rooms claim would drop a joined room is refused, and an accepted one
// applies its claim.
func TestTokenRefresh(t *testing.T) {
	st := newStack(t, stackOpts{})
	g := st.gateway(t, nil) // the default 30s warning: a 2s token is warned at once
	oldTok := g.signed(t, "alice", nil, 2*time.Second)
	old, _ := st.keys.Verify(oldTok)
	kept := g.dialToken(t, "alice", oldTok, websocket.DefaultDialer, true)
	refreshed := g.dialToken(t, "alice", oldTok, websocket.DefaultDialer, true)
	for _, c := range []*client{kept, refreshed} {
		if w := c.expectType("token_expiring"); w.InMS <= 0 || w.InMS > 2000 {
			t.Fatalf("token_expiring in_ms = %d, want under the token's 2s", w.InMS)
		}
	}

	refreshed.join("lobby")
	// Narrowing below a joined room is refused…
	refreshed.send(map[string]any{"type": "refresh", "token": g.signed(t, "alice", []string{"other"}, time.Minute)})
	if e := refreshed.expectError("forbidden"); e.Message == "" {
		t.Fatal("refusal without a reason")
	}
	// …a claim that keeps it is accepted, and then limits new joins.
	newTok := g.signed(t, "alice", []string{"lobby"}, 5*time.Second)
	fresh, _ := st.keys.Verify(newTok)
	refreshed.send(map[string]any{"type": "refresh", "token": newTok})
	if f := refreshed.expectType("token_refreshed"); f.InMS <= 2000 {
		t.Fatalf("token_refreshed in_ms = %d, want the new token's longer life", f.InMS)
	}
	refreshed.send(map[string]any{"type": "join", "room": "elsewhere"})
	refreshed.expectError("forbidden")

	kept.send(map[string]any{"type": "refresh", "token": "not.a.token"})
	kept.expectError("unauthorized")
	kept.send(map[string]any{"type": "refresh", "token": g.signed(t, "mallory", nil, time.Hour)})
	kept.expectError("forbidden")
	if ce := kept.awaitClose(); ce.Code != gateway.CloseTokenExpired {
		t.Fatalf("kept closed with %d, want 4001 at the old exp", ce.Code)
	}
	if time.Now().Before(old.Expiry()) {
		t.Fatal("kept closed before its token's exp")
	}

	// The refreshed connection lives past the old exp: it is warned about
	// the new token, then closed at the new exp.
	refreshed.expectType("token_expiring")
	if ce := refreshed.awaitClose(); ce.Code != gateway.CloseTokenExpired {
		t.Fatalf("refreshed closed with %d, want 4001 at the new exp", ce.Code)
	}
	if now := time.Now(); now.Before(fresh.Expiry()) || !fresh.Expiry().After(old.Expiry()) {
		t.Fatalf("refreshed closed at %v; old exp %v, new exp %v", now, old.Expiry(), fresh.Expiry())
	}
}

// TestExpiryCostsIdleConnectionsNoGoroutine: the token deadline is a timer,
// not a goroutine. An idle connection is the server's reader and writer
// and this test's reading client: three goroutines, no fourth.
func TestExpiryCostsIdleConnectionsNoGoroutine(t *testing.T) {
	st := newStack(t, stackOpts{})
	g := st.gateway(t, nil)
	g.dial(t, "warm").join("warm") // the log tail and its clients are running
	const n = 40
	before := runtime.NumGoroutine()
	for i := range n {
		user := fmt.Sprint("idle", i)
		g.dialToken(t, user, g.signed(t, user, nil, time.Hour), websocket.DefaultDialer, true)
	}
	testsvc.Eventually(t, waitFor, "the idle connections' goroutines to settle", func() bool {
		return runtime.NumGoroutine()-before <= 3*n+n/4 // a fourth per connection would be 4n
	})
}
