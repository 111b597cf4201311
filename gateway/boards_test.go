package gateway_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rtstack/rtstack/commands"
	"github.com/rtstack/rtstack/gateway"
	"github.com/rtstack/rtstack/infra/kafka"
	"github.com/rtstack/rtstack/internal/testsvc"
	"github.com/rtstack/rtstack/projections"
	"github.com/rtstack/rtstack/projections/projectionstest"
	"github.com/rtstack/rtstack/projections/redis"
	"github.com/rtstack/rtstack/projections/view"
)

// countingBoards counts the Redis reads a gateway makes for its channels.
type countingBoards struct {
	gateway.Boards
	reads atomic.Int64
}

func (b *countingBoards) Leaderboard(ctx context.Context, n int) ([]view.ScoreEntry, error) {
	b.reads.Add(1)
	return b.Boards.Leaderboard(ctx, n)
}

func (b *countingBoards) Counters(ctx context.Context, room string) (view.Counters, error) {
	b.reads.Add(1)
	return b.Boards.Counters(ctx, room)
}

// liveBoards is the real Redis projection, projected from the stack's log
// by a running projector, behind two gateways whose board reads are
// counted.
type liveBoards struct {
	gws    [2]*gw
	boards [2]*countingBoards
}

func newLiveBoards(t *testing.T, st *stack) *liveBoards {
	t.Helper()
	rdb, prefix := testsvc.Redis(t)
	rp, err := redis.Open(context.Background(), redis.Config{Redis: rdb, Prefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	projectionstest.Run(t, projections.Config{Kafka: kafka.ClientConfig{Brokers: []string{st.addr}}, Topic: topic, Group: "boards-" + prefix, Store: rp, Codec: st.codec})
	lb := &liveBoards{}
	for i := range lb.gws {
		lb.boards[i] = &countingBoards{Boards: rp}
		lb.gws[i] = st.gateway(t, func(c *gateway.Config) {
			c.Boards, c.BoardChanges, c.BoardInterval = lb.boards[i], rp, 250*time.Millisecond
		})
	}
	return lb
}

// subscribers opens n connections to each gateway, each subscribed to the
// leaderboard and to room's counters, with their snapshots received.
func (lb *liveBoards) subscribers(t *testing.T, n int, room string) []*client {
	t.Helper()
	var out []*client
	for gi, g := range lb.gws {
		for i := range n {
			c := g.dial(t, fmt.Sprintf("watcher-%d-%d", gi, i))
			c.send(map[string]any{"type": "subscribe", "channel": "leaderboard"})
			c.expectType("leaderboard")
			c.send(map[string]any{"type": "subscribe", "channel": "counters", "room": room})
			c.expectType("counters")
			out = append(out, c)
		}
	}
	return out
}

func (lb *liveBoards) reads() [2]int64 {
	return [2]int64{lb.boards[0].reads.Load(), lb.boards[1].reads.Load()}
}

type boardFrame struct {
	Entries []view.ScoreEntry `json:"entries"`
	Total   int64             `json:"total"`
	Members int64             `json:"members"`
}

func decodeBoard(t testing.TB, f frame) boardFrame {
	t.Helper()
	var b boardFrame
	if err := json.Unmarshal([]byte(f.raw), &b); err != nil {
		t.Fatalf("board frame %s: %v", f.raw, err)
	}
	return b
}

// awaitBoards waits until c's latest leaderboard shows user with score and
// its latest counters of room show total.
func awaitBoards(t *testing.T, c *client, user string, score, total int64) {
	t.Helper()
	c.await(fmt.Sprintf("%s at %d and total %d", user, score, total), func(fs []frame) bool {
		lbs, cs := of(fs, "leaderboard"), of(fs, "counters")
		if len(lbs) == 0 || len(cs) == 0 {
			return false
		}
		lbf, cf := decodeBoard(t, lbs[len(lbs)-1]), decodeBoard(t, cs[len(cs)-1])
		return len(lbf.Entries) > 0 && lbf.Entries[0] == view.ScoreEntry{User: user, Score: score} && cf.Total == total
	})
}

// Every subscriber on both gateways sees each change of the projection,
// and a gateway reads a changed board once per change, not once per
// subscriber.
func TestLiveBoardsAcrossGateways(t *testing.T) {
	st := newStack(t, stackOpts{})
	lb := newLiveBoards(t, st)
	const perGateway = 8
	watchers := lb.subscribers(t, perGateway, "lobby")
	snapshots := lb.reads()
	sender := lb.gws[0].dial(t, "alice")
	sender.join("lobby")
	for i := range 3 {
		before := lb.reads()
		sender.say("lobby", fmt.Sprintf("m%d", i), "hello")
		for _, c := range watchers {
			awaitBoards(t, c, "alice", int64(i+1), int64(i+1))
		}
		after := lb.reads()
		for g := range after {
			// One message changes two boards (the leaderboard, the room's
			// counters); the join before the first one changed the counters
			// too, and on a loaded machine the notices may land in separate
			// ticks. A read per subscriber would be 2×perGateway = 16.
			if n := after[g] - before[g]; n > perGateway {
				t.Errorf("gateway %d: %d board reads for one message to %d subscribers; want at most %d", g, n, perGateway, perGateway)
			}
		}
	}
	for g, n := range lb.reads() {
		t.Logf("gateway %d: %d snapshot reads, %d change reads for %d subscribers × 2 channels", g, snapshots[g], n-snapshots[g], perGateway)
	}
}

// A burst of appends reaches subscribers as at most one push per channel
// per interval, and the last push shows the final state.
func TestLiveBoardsCoalesceABurst(t *testing.T) {
	st := newStack(t, stackOpts{})
	lb := newLiveBoards(t, st)
	watchers := lb.subscribers(t, 2, "burst")
	if _, err := st.cmds.JoinRoom(context.Background(), commands.JoinRoom{Room: "burst", User: "bob"}); err != nil {
		t.Fatal(err)
	}
	// Appends for 1 s, four board intervals, as fast as 2 senders go.
	const senders, burst = 2, time.Second
	var sent atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for s := range senders {
		wg.Go(func() {
			for i := 0; time.Since(start) < burst; i++ {
				_, err := st.cmds.SendMessage(context.Background(), commands.SendMessage{
					Room: "burst", User: "bob", ClientID: fmt.Sprintf("b%d-%d", s, i), Text: "burst"})
				if err != nil {
					t.Errorf("send: %v", err)
					return
				}
				sent.Add(1)
			}
		})
	}
	wg.Wait()
	total := sent.Load()
	for _, c := range watchers {
		awaitBoards(t, c, "bob", total, total)
		c.mu.Lock()
		fs := append([]frame(nil), c.frames...)
		c.mu.Unlock()
		for _, channel := range []string{"leaderboard", "counters"} {
			pushes := of(fs, channel)[1:] // after the snapshot
			span := pushes[len(pushes)-1].at.Sub(pushes[0].at)
			limit := int(span/(250*time.Millisecond)) + 2
			t.Logf("%s: %s: %d pushes over %s for %d messages", c.user, channel, len(pushes), span, total)
			if len(pushes) > limit {
				t.Errorf("%s: %d %s pushes over %s, want at most %d (4 per second)", c.user, len(pushes), channel, span, limit)
			}
		}
	}
}
