package gateway_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"golang.org/x/time/rate"

	"github.com/rtstack/rtstack/gateway"
	"github.com/rtstack/rtstack/gateway/loadgen"
)

// endpoint is the gateway's WebSocket URL without a token.
func (g *gw) endpoint() string { return "ws" + strings.TrimPrefix(g.hs.URL, "http") + "/ws" }

// tokens signs a token for any user, as `rtstack loadtest` does.
func (g *gw) tokens(user string) (string, error) { return g.st.keys.Sign(user, "", false, time.Hour) }

// checkAccounting asserts a clean run's counts add up: every send acked,
// every acked message delivered to each member of its room, one latency
// sample per ack and per delivery, no errors, no disconnects.
func checkAccounting(t *testing.T, rep *loadgen.Report, perRoom int64) {
	t.Helper()
	if rep.Connected != rep.Clients {
		t.Errorf("%d of %d clients joined", rep.Connected, rep.Clients)
	}
	if rep.TotalSent == 0 || rep.Delivered == 0 {
		t.Fatalf("nothing sent or delivered: %+v", rep)
	}
	if rep.TotalAcked != rep.TotalSent || rep.Unanswered != 0 || rep.TotalRefused != 0 {
		t.Errorf("sent %d, acked %d, refused %d, unanswered %d", rep.TotalSent, rep.TotalAcked, rep.TotalRefused, rep.Unanswered)
	}
	if rep.Expected != rep.TotalAcked*perRoom || rep.TotalDelivered != rep.Expected || rep.Missing != 0 {
		t.Errorf("acked %d × %d members: expected %d, delivered %d, missing %d",
			rep.TotalAcked, perRoom, rep.Expected, rep.TotalDelivered, rep.Missing)
	}
	if rep.AckLatency.Count != rep.TotalAcked || rep.DeliveryLatency.Count != rep.TotalDelivered {
		t.Errorf("latency samples: %d acks, %d deliveries; want %d and %d",
			rep.AckLatency.Count, rep.DeliveryLatency.Count, rep.TotalAcked, rep.TotalDelivered)
	}
	if rep.Sent > rep.TotalSent || rep.Delivered > rep.TotalDelivered {
		t.Errorf("window counts exceed the totals: %+v", rep)
	}
	if len(rep.Errors) != 0 || len(rep.Disconnects) != 0 {
		t.Errorf("errors %v, disconnects %v", rep.Errors, rep.Disconnects)
	}
}

// The load generator drives a real gateway (and the raw baseline) for a
// second in each mode, and its counts add up.
func TestLoadgenDrivesGateway(t *testing.T) {
	st := newStack(t, stackOpts{})
	g := st.gateway(t, func(c *gateway.Config) { c.RateLimit = rate.Inf })
	raw := startRawBroadcast(t)
	for _, tc := range []struct {
		name   string
		url    string
		tokens func(string) (string, error)
		rate   float64
		window int
	}{
		{"gateway closed loop", g.endpoint(), g.tokens, 0, 4},
		{"gateway open loop", g.endpoint(), g.tokens, 100, 0},
		{"raw baseline closed loop", raw.url(), nil, 0, 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rep, err := loadgen.Run(context.Background(), loadgen.Config{
				URL: tc.url, Token: tc.tokens, Clients: 20, Rooms: 2, Senders: 4,
				Rate: tc.rate, Window: tc.window, Duration: time.Second, Drain: waitFor,
			})
			if err != nil {
				t.Fatal(err)
			}
			checkAccounting(t, rep, 10)
		})
	}
}

// Refusals are counted by code and answer their send, and the abuse close
// is counted as a disconnect with its close code.
func TestLoadgenCountsErrorsAndDisconnects(t *testing.T) {
	st := newStack(t, stackOpts{})
	g := st.gateway(t, func(c *gateway.Config) { c.RateLimit, c.Burst, c.AbuseAfter = 5, 5, 50 })
	rep, err := loadgen.Run(context.Background(), loadgen.Config{
		URL: g.endpoint(), Token: g.tokens, Clients: 1, Senders: 1, Window: 8, Duration: time.Second,
		Drain: time.Second, // what is unanswered at the close stays so
	})
	if err != nil {
		t.Fatal(err)
	}
	// The close drops what was still queued, so some refusals never arrive.
	if rep.Errors["rate_limited"] == 0 || rep.TotalRefused != rep.Errors["rate_limited"] {
		t.Errorf("rate_limited %d, refused %d: want some, and equal", rep.Errors["rate_limited"], rep.TotalRefused)
	}
	if rep.Disconnects["1008"] != 1 {
		t.Errorf("disconnects %v, want one 1008", rep.Disconnects)
	}
	if rep.TotalAcked+rep.TotalRefused+rep.Unanswered != rep.TotalSent {
		t.Errorf("acked %d + refused %d + unanswered %d ≠ sent %d", rep.TotalAcked, rep.TotalRefused, rep.Unanswered, rep.TotalSent)
	}
}
