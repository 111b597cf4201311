package gateway_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"golang.org/x/time/rate"

	"github.com/rtstack/rtstack/gateway"
	"github.com/rtstack/rtstack/internal/httpserve"
	"github.com/rtstack/rtstack/internal/testsvc"
)

// A user's connections to one gateway are capped: the next is refused with
// HTTP 429 too_many_connections before the upgrade, other users are not
// affected, and a closed connection frees its place.
func TestUserConnLimit(t *testing.T) {
	st := newStack(t, stackOpts{})
	g := st.gateway(t, func(c *gateway.Config) { c.UserConnLimit = 2 })
	first := g.dial(t, "alice")
	g.dial(t, "alice")

	status, code := refusal(t, g, "alice")
	if status != http.StatusTooManyRequests || code != gateway.CodeTooManyConnections {
		t.Fatalf("third connection of alice: HTTP %d %q, want 429 %s", status, code, gateway.CodeTooManyConnections)
	}
	g.dial(t, "bob").join("r") // another user is not counted against alice

	_ = first.ws.Close()
	testsvc.Eventually(t, waitFor, "a place freed by a closed connection", func() bool {
		ws, resp, err := websocket.DefaultDialer.Dial(g.url(g.token(t, "alice")), nil)
		if err != nil {
			if resp != nil {
				_ = resp.Body.Close()
			}
			return false
		}
		_ = ws.Close()
		return true
	})
}

// refusal dials as user and returns the HTTP status and error code of a
// refused upgrade.
func refusal(t *testing.T, g *gw, user string) (int, string) {
	t.Helper()
	ws, resp, err := websocket.DefaultDialer.Dial(g.url(g.token(t, user)), nil)
	if err == nil {
		_ = ws.Close()
		t.Fatalf("%s: upgraded, want a refusal", user)
	}
	if resp == nil {
		t.Fatalf("%s: no HTTP answer: %v", user, err)
	}
	defer resp.Body.Close()
	var body struct{ Error struct{ Code string } }
	_ = json.NewDecoder(resp.Body).Decode(&body)
	return resp.StatusCode, body.Error.Code
}

// The per-user rate is shared by all of a user's connections: two of
// alice's, each under its own rate, are refused together with
// user_rate_limited, while bob on the same gateway is served.
func TestUserRateLimit(t *testing.T) {
	st := newStack(t, stackOpts{})
	g := st.gateway(t, func(c *gateway.Config) { c.UserRateLimit, c.UserBurst = 1, 4 })
	a1, a2, bob := g.dial(t, "alice"), g.dial(t, "alice"), g.dial(t, "bob")
	for i := range 4 { // each connection sends 4: twice the shared bucket
		a1.sendRaw(fmt.Appendf(nil, `{"type":"ping","client_id":"a1-%d"}`, i))
		a2.sendRaw(fmt.Appendf(nil, `{"type":"ping","client_id":"a2-%d"}`, i))
	}
	refused := 0
	for _, c := range []*client{a1, a2} {
		for range 4 {
			f := c.expectType("error")
			switch f.Code {
			case gateway.CodeUserRateLimited:
				refused++
			case gateway.CodeUnknownType: // served (ping is no frame type)
			default:
				t.Fatalf("%s: %s", c.user, f.raw)
			}
		}
	}
	if refused < 3 { // 8 frames, a bucket of 4 refilling at 1/s
		t.Fatalf("%d of alice's 8 frames refused for the user's rate, want at least 3", refused)
	}
	bob.join("r") // bob has his own bucket
}

// Rooms joined and board channels subscribed per connection are capped,
// each with its code; leaving makes room again.
func TestRoomAndSubscriptionLimits(t *testing.T) {
	st := newStack(t, stackOpts{})
	boards := &fakeBoards{}
	g := st.gateway(t, func(c *gateway.Config) { c.MaxRooms, c.MaxSubscriptions, c.Boards = 2, 1, boards })
	c := g.dial(t, "alice")
	c.join("a")
	c.join("b")
	c.send(map[string]any{"type": "join", "room": "c", "client_id": "j"})
	if f := c.expectError(gateway.CodeTooManyRooms); f.Ref == nil || *f.Ref != "j" {
		t.Fatalf("too_many_rooms without the frame's client_id: %s", f.raw)
	}
	c.send(map[string]any{"type": "leave", "room": "a", "client_id": "l"})
	c.expect("ack of leave", func(f frame) bool { return f.Type == "ack" && f.ClientID == "l" })
	c.join("c")

	c.send(map[string]any{"type": "subscribe", "channel": "leaderboard"})
	c.expectType("leaderboard")
	c.send(map[string]any{"type": "subscribe", "channel": "leaderboard"}) // the same one again is no new subscription
	c.expectType("leaderboard")
	c.send(map[string]any{"type": "subscribe", "channel": "counters", "room": "a"})
	c.expectError(gateway.CodeTooManySubscriptions)
	c.send(map[string]any{"type": "unsubscribe", "channel": "leaderboard"})
	c.send(map[string]any{"type": "subscribe", "channel": "counters", "room": "a"})
	c.expectType("counters")
}

// RATE_LIMIT=0 means unlimited: the binary passes rate.Inf, under which no
// frame is ever refused.
func TestUnlimitedRate(t *testing.T) {
	st := newStack(t, stackOpts{})
	g := st.gateway(t, func(c *gateway.Config) { c.RateLimit, c.Burst, c.UserRateLimit, c.UserBurst = rate.Inf, 0, rate.Inf, 0 })
	c := g.dial(t, "alice")
	const n = 500
	for i := range n {
		c.sendRaw(fmt.Appendf(nil, `{"type":"ping","client_id":"%d"}`, i))
	}
	fs := c.await(fmt.Sprintf("%d answers", n), func(fs []frame) bool { return len(of(fs, "error")) >= n })
	for _, f := range of(fs, "error") {
		if f.Code != gateway.CodeUnknownType {
			t.Fatalf("unlimited rate refused a frame: %s", f.raw)
		}
	}
}

// The HTTP server's timeouts cut slow plain requests, never a WebSocket: a
// connection stays usable long after every one of them has passed.
func TestWebSocketOutlivesHTTPTimeouts(t *testing.T) {
	st := newStack(t, stackOpts{})
	g := st.gateway(t, nil)
	const timeout = 300 * time.Millisecond
	srv, err := httpserve.New(g.srv, httpserve.Config{ReadHeaderTimeout: timeout, ReadTimeout: timeout, WriteTimeout: timeout, IdleTimeout: timeout})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewUnstartedServer(nil)
	hs.Config = srv
	hs.Start()
	t.Cleanup(hs.Close)
	short := &gw{srv: g.srv, hs: hs, st: st}
	alice := short.dial(t, "alice")
	alice.join("r")
	<-time.After(4 * timeout) // the scenario: time passes on an idle WebSocket
	ack := alice.say("r", "c1", "still here")
	alice.expect("own message", func(f frame) bool { return f.Type == "message" && f.MessageID == ack.MessageID })
}
