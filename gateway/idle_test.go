package gateway_test

import (
	"context"
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/rtstack/rtstack/gateway"
	"github.com/rtstack/rtstack/internal/testsvc"
	"github.com/rtstack/rtstack/projections/view"
)

// dialCountingPings dials user with a client that counts the server's
// pings; with answer it sends the pong (as browsers do), without it stays
// mute.
func (g *gw) dialCountingPings(t *testing.T, user string, answer bool) (*client, *atomic.Int64) {
	t.Helper()
	c := g.dialWith(t, user, websocket.DefaultDialer, false)
	var pings atomic.Int64
	c.ws.SetPingHandler(func(data string) error {
		pings.Add(1)
		if !answer {
			return nil
		}
		return c.ws.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(time.Second))
	})
	c.startReading()
	return c, &pings
}

// An idle connection holds one goroutine on the server, its reader: the
// writer runs only while there is something to write, pings included. Each
// connection here joined a room and was pinged several times, so its writer
// has run and ended; with the test's own reader per client that is two
// goroutines per connection, not three.
func TestIdleConnectionHoldsOneGoroutine(t *testing.T) {
	st := newStack(t, stackOpts{})
	g := st.gateway(t, func(c *gateway.Config) { c.PingInterval, c.PongWait = 30*time.Millisecond, 10*time.Second })
	g.dial(t, "warm").join("warm") // the log tail and its clients are running
	const n = 40
	before := runtime.NumGoroutine()
	pings := make([]*atomic.Int64, n)
	for i := range n {
		var c *client
		c, pings[i] = g.dialCountingPings(t, fmt.Sprint("idle", i), true)
		c.join(fmt.Sprint("idle-room-", i%4))
	}
	testsvc.Eventually(t, waitFor, "every idle connection pinged three times", func() bool {
		for _, p := range pings {
			if p.Load() < 3 {
				return false
			}
		}
		return true
	})
	testsvc.Eventually(t, waitFor, "the idle connections' writers to end", func() bool {
		return runtime.NumGoroutine()-before <= 2*n+n/4 // a writer each would be 3n
	})
}

// Pings reach idle connections without a writer of their own: a client
// that answers them outlives several pong waits, and one that does not is
// closed once PongWait passes without a pong.
func TestUnansweredPingsCloseIdleConnection(t *testing.T) {
	st := newStack(t, stackOpts{})
	const pongWait = 300 * time.Millisecond
	g := st.gateway(t, func(c *gateway.Config) { c.PingInterval, c.PongWait = 20*time.Millisecond, pongWait })
	live, livePings := g.dialCountingPings(t, "live", true)
	live.join("quiet")
	mute, mutePings := g.dialCountingPings(t, "mute", false)

	if ce := mute.awaitClose(); ce.Code != websocket.CloseNormalClosure {
		t.Fatalf("mute client closed with %d, want %d after its read deadline", ce.Code, websocket.CloseNormalClosure)
	}
	if mutePings.Load() == 0 {
		t.Fatal("the mute client was closed without having been pinged")
	}
	// 50 pings 20ms apart span over three pong waits: only the live
	// client's pongs kept it open that long.
	testsvc.Eventually(t, waitFor, "the live client answered 50 pings", func() bool {
		return livePings.Load() >= 50
	})
	if got := live.say("quiet", "still-here", "hello"); got.ClientID != "still-here" {
		t.Fatalf("live client's send answered %s", got.raw)
	}
}

// panickyBoards panics reading the leaderboard: a bug in a port the reader
// calls.
type panickyBoards struct{ *fakeBoards }

func (panickyBoards) Leaderboard(context.Context, int) ([]view.ScoreEntry, error) {
	panic("leaderboard bug")
}

// A panic in a connection's reader ends that connection (1011), not the
// gateway: the reader no longer runs under net/http's handler, which
// recovered it before.
func TestReaderPanicEndsOnlyItsConnection(t *testing.T) {
	st := newStack(t, stackOpts{})
	g := st.gateway(t, func(c *gateway.Config) { c.Boards = panickyBoards{&fakeBoards{}} })
	bystander := g.dial(t, "bystander")
	bystander.join("calm")
	victim := g.dial(t, "victim")
	victim.send(map[string]any{"type": "subscribe", "channel": "leaderboard"})
	if ce := victim.awaitClose(); ce.Code != websocket.CloseInternalServerErr {
		t.Fatalf("the panicking connection closed with %d, want %d", ce.Code, websocket.CloseInternalServerErr)
	}
	if got := bystander.say("calm", "after-panic", "still here"); got.ClientID != "after-panic" {
		t.Fatalf("bystander's send answered %s", got.raw)
	}
	g.dial(t, "newcomer").join("calm") // and the gateway still accepts connections
}
