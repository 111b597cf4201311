package gateway_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/rtstack/rtstack/gateway"
)

// Test 7: bad input is answered with the right error code and the
// connection stays usable.
func TestBadInput(t *testing.T) {
	st := newStack(t, stackOpts{})
	g := st.gateway(t, nil)
	joined := func(t *testing.T) *client {
		c := g.dial(t, "alice")
		c.join("room-1")
		return c
	}
	long := strings.Repeat("a", 4097)
	for _, tc := range []struct {
		name  string
		join  bool
		frame string
		code  string
		ref   string // "" means ref must be null
	}{
		{"malformed json", false, `{"type":"send",`, gateway.CodeBadJSON, ""},
		{"not an object", false, `["send"]`, gateway.CodeBadJSON, ""},
		{"unknown type", false, `{"type":"shout","client_id":"k"}`, gateway.CodeUnknownType, "k"},
		{"no type", false, `{"room":"room-1"}`, gateway.CodeInvalid, ""},
		{"wrong field type", false, `{"type":"join","room":5}`, gateway.CodeInvalid, ""},
		{"send without text", true, `{"type":"send","room":"room-1","client_id":"k"}`, gateway.CodeInvalid, "k"},
		{"edit without message_id", true, `{"type":"edit","room":"room-1","text":"x","client_id":"k"}`, gateway.CodeInvalid, "k"},
		{"react without emoji", true, `{"type":"react","room":"room-1","message_id":"m1"}`, gateway.CodeInvalid, ""},
		{"join without room", false, `{"type":"join"}`, gateway.CodeBadRoom, ""},
		{"since before the log", false, `{"type":"join","room":"room-9","since":{"partition":0,"offset":-7}}`, gateway.CodeInvalid, ""},
		{"since without offset", false, `{"type":"join","room":"room-9","since":{"partition":0}}`, gateway.CodeInvalid, ""},
		{"text over 4096 bytes", true, `{"type":"send","room":"room-1","client_id":"k","text":"` + long + `"}`, gateway.CodeTextTooLong, "k"},
		{"invalid utf-8", true, "{\"type\":\"send\",\"room\":\"room-1\",\"text\":\"bad \xff\xfe\"}", gateway.CodeInvalidUTF8, ""},
		{"empty room", false, `{"type":"join","room":""}`, gateway.CodeBadRoom, ""},
		{"room over 64 bytes", false, `{"type":"join","room":"` + strings.Repeat("r", 65) + `"}`, gateway.CodeBadRoom, ""},
		{"room with bad characters", false, `{"type":"join","room":"a room!"}`, gateway.CodeBadRoom, ""},
		{"send in a room not joined", true, `{"type":"send","room":"room-2","text":"hi","client_id":"k"}`, gateway.CodeNotMember, "k"},
		{"edit in a room not joined", false, `{"type":"edit","room":"room-2","message_id":"m","text":"hi"}`, gateway.CodeNotMember, ""},
		{"delete in a room not joined", false, `{"type":"delete","room":"room-2","message_id":"m"}`, gateway.CodeNotMember, ""},
		{"react in a room not joined", false, `{"type":"react","room":"room-2","message_id":"m","emoji":"x"}`, gateway.CodeNotMember, ""},
		{"leave a room not joined", false, `{"type":"leave","room":"room-2"}`, gateway.CodeNotMember, ""},
		{"join twice", true, `{"type":"join","room":"room-1"}`, gateway.CodeAlreadyJoined, ""},
		{"unknown channel", false, `{"type":"subscribe","channel":"weather"}`, gateway.CodeInvalid, ""},
		{"boards not configured", false, `{"type":"subscribe","channel":"leaderboard"}`, gateway.CodeUnavailable, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var c *client
			if tc.join {
				c = joined(t)
			} else {
				c = g.dial(t, "alice")
			}
			c.sendRaw([]byte(tc.frame))
			e := c.expectError(tc.code)
			switch {
			case tc.ref == "" && e.Ref != nil:
				t.Errorf("ref %q, want null: %s", *e.Ref, e.raw)
			case tc.ref != "" && (e.Ref == nil || *e.Ref != tc.ref):
				t.Errorf("ref wrong, want %q: %s", tc.ref, e.raw)
			}
			if e.Message == "" {
				t.Errorf("error without message: %s", e.raw)
			}
			// The connection stays open and usable.
			c.join("room-ok")
		})
	}
	t.Run("text of exactly 4096 bytes is fine", func(t *testing.T) {
		c := joined(t)
		c.say("room-1", "max", strings.Repeat("é", 2048))
	})
}

// A frame over MaxFrameBytes closes the connection with 1009.
func TestFrameTooBig(t *testing.T) {
	st := newStack(t, stackOpts{})
	g := st.gateway(t, func(c *gateway.Config) { c.MaxFrameBytes = 1024 })
	c := g.dial(t, "alice")
	c.join("r")
	c.sendRaw([]byte(`{"type":"send","room":"r","text":"` + strings.Repeat("x", 2000) + `"}`))
	if code := c.closeCode(); code != websocket.CloseMessageTooBig {
		t.Fatalf("close code %d, want %d", code, websocket.CloseMessageTooBig)
	}
}

// Flooding is answered with rate_limited and the connection kept; a client
// that goes on flooding is closed with 1008.
func TestRateLimit(t *testing.T) {
	st := newStack(t, stackOpts{})
	g := st.gateway(t, func(c *gateway.Config) { c.RateLimit, c.Burst, c.AbuseAfter = 20, 5, 200 })
	t.Run("limited", func(t *testing.T) {
		c := g.dial(t, "alice")
		for i := range 30 {
			c.sendRaw(fmt.Appendf(nil, `{"type":"ping","client_id":"f%d"}`, i))
		}
		e := c.expect("rate_limited", func(f frame) bool { return f.Type == "error" && f.Code == gateway.CodeRateLimited })
		if e.Ref == nil || !strings.HasPrefix(*e.Ref, "f") {
			t.Errorf("rate_limited error should carry the frame's client_id: %s", e.raw)
		}
		// Still open: once the bucket refills, frames are served again.
		deadline := time.Now().Add(waitFor)
		for {
			c.send(map[string]any{"type": "join", "room": "calm", "client_id": "j"})
			f := c.expect("answer to join", func(f frame) bool { return f.Ref != nil && *f.Ref == "j" || f.ClientID == "j" })
			if f.Type == "ack" {
				break
			}
			if f.Code != gateway.CodeRateLimited || time.Now().After(deadline) {
				t.Fatalf("join after flooding: %s", f.raw)
			}
			time.Sleep(100 * time.Millisecond) // pacing a client, not synchronising
		}
	})
	t.Run("abusive", func(t *testing.T) {
		c := g.dial(t, "mallory")
		for range 1000 {
			c.wmu.Lock()
			err := c.ws.WriteMessage(websocket.TextMessage, []byte(`{"type":"send"}`))
			c.wmu.Unlock()
			if err != nil {
				break // the server closed on us
			}
		}
		if code := c.closeCode(); code != websocket.ClosePolicyViolation {
			t.Fatalf("close code %d, want %d", code, websocket.ClosePolicyViolation)
		}
	})
}

// Tokens are checked before the upgrade: no WebSocket without a valid one.
func TestAuthBeforeUpgrade(t *testing.T) {
	st := newStack(t, stackOpts{})
	g := st.gateway(t, nil)
	expired, err := st.keys.Sign("alice", "", false, -time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	base := "ws" + strings.TrimPrefix(g.hs.URL, "http") + "/ws"
	for _, tc := range []struct {
		name   string
		url    string
		header http.Header
		status int
	}{
		{"missing", base, nil, http.StatusUnauthorized},
		{"malformed", base + "?token=not-a-jwt", nil, http.StatusUnauthorized},
		{"bad signature", base + "?token=" + g.token(t, "alice") + "x", nil, http.StatusUnauthorized},
		{"expired", base + "?token=" + expired, nil, http.StatusUnauthorized},
		{"foreign origin", base + "?token=" + g.token(t, "alice"), http.Header{"Origin": {"http://evil.example"}}, http.StatusForbidden},
		{"bearer header", base, http.Header{"Authorization": {"Bearer " + g.token(t, "alice")}}, http.StatusSwitchingProtocols},
		{"same origin", base + "?token=" + g.token(t, "alice"), http.Header{"Origin": {g.hs.URL}}, http.StatusSwitchingProtocols},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ws, resp, err := websocket.DefaultDialer.Dial(tc.url, tc.header)
			if ws != nil {
				_ = ws.Close()
			}
			if resp == nil {
				t.Fatalf("no HTTP response: %v", err)
			}
			var body struct {
				Error struct{ Code, Message string }
			}
			_ = json.NewDecoder(resp.Body).Decode(&body)
			_ = resp.Body.Close()
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d (%v)", resp.StatusCode, tc.status, err)
			}
			if tc.status >= 400 && (body.Error.Code == "" || strings.Count(body.Error.Message, "unauthorized") > 1) {
				t.Fatalf("refusal body %+v: want a code, and no doubled prefix", body.Error)
			}
		})
	}
}

// A client that cannot keep up is closed with CloseSlowClient, and the
// others on the same gateway still get everything.
func TestSlowClient(t *testing.T) {
	st := newStack(t, stackOpts{})
	g := st.gatewayOn(t, func(c *gateway.Config) { c.SendQueue, c.WriteWait = 512, time.Minute }, true)
	slow := g.dialWith(t, "slow", smallBufferDialer(), false) // first: the small buffers are its

	slow.send(map[string]any{"type": "join", "room": "r"})
	bob := g.dial(t, "bob")
	bob.join("r")
	// The senders use another gateway, so only the receivers' queues are
	// under test here.
	g2 := st.gateway(t, nil)
	senders := []*client{g2.dial(t, "s1"), g2.dial(t, "s2")}
	text := strings.Repeat("z", 200)
	const each = 700
	var wg sync.WaitGroup
	for i, c := range senders {
		c.join("r")
		wg.Go(func() {
			for j := range each {
				c.send(map[string]any{"type": "send", "room": "r", "client_id": fmt.Sprint(i, "-", j), "text": text})
			}
		})
	}
	wg.Wait()
	if n := len(bob.messages("r", len(senders)*each)); n != len(senders)*each {
		t.Fatalf("bob got %d messages, want %d", n, len(senders)*each)
	}
	slow.startReading()
	if code := slow.closeCode(); code != gateway.CloseSlowClient {
		t.Fatalf("slow client closed with %d, want %d", code, gateway.CloseSlowClient)
	}
}
