package postgres_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/rtstack/rtstack/events"
	"github.com/rtstack/rtstack/infra/kafka"
	"github.com/rtstack/rtstack/internal/testsvc"
	"github.com/rtstack/rtstack/projections/postgres"
	"github.com/rtstack/rtstack/schemas"
)

// open returns a projection on a fresh database.
func open(t testing.TB) (*postgres.Projection, string) {
	t.Helper()
	url := testsvc.Postgres(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p, err := postgres.Open(ctx, postgres.Config{URL: url})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p, url
}

func env(id, room, user string, ts int64) events.Envelope {
	return events.Envelope{ID: id, Room: room, User: user, Time: ts}
}

// gen makes a deterministic, messy mix of chat traffic: duplicates, edits
// and deletes by strangers, reactions toggled, members coming and going.
type gen struct {
	rng   *rand.Rand
	n     int
	ts    int64
	sent  map[string][]*events.MessageSent // room → messages
	rooms int
}

func newGen(seed uint64, rooms int) *gen {
	return &gen{rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b9)), sent: map[string][]*events.MessageSent{}, rooms: rooms, ts: 1_700_000_000_000}
}

func (g *gen) next() events.Event {
	g.n++
	g.ts += int64(g.rng.IntN(50))
	room := fmt.Sprintf("room-%d", g.rng.IntN(g.rooms))
	user := fmt.Sprintf("user-%d", g.rng.IntN(12))
	e := env(fmt.Sprintf("ev-%d", g.n), room, user, g.ts)
	msgs := g.sent[room]
	pick := func() *events.MessageSent { return msgs[g.rng.IntN(len(msgs))] }
	r := g.rng.IntN(100)
	switch {
	case r < 45 || len(msgs) == 0:
		id := fmt.Sprintf("m-%d", g.n)
		if len(msgs) > 0 && g.rng.IntN(30) == 0 {
			id = pick().MessageID // a duplicate, maybe from someone else
		}
		ev := &events.MessageSent{Envelope: e, MessageID: id, ClientID: fmt.Sprint("c", g.n), Text: fmt.Sprintf("hello %d from %s", g.n, user)}
		if g.rng.IntN(4) == 0 {
			ev.Mentions = []string{fmt.Sprintf("user-%d", g.rng.IntN(12))}
		}
		g.sent[room] = append(msgs, ev)
		return ev
	case r < 55:
		m := pick()
		if g.rng.IntN(5) > 0 {
			e.User = m.User
		}
		return &events.MessageEdited{Envelope: e, MessageID: m.MessageID, Text: fmt.Sprintf("edited %d", g.n)}
	case r < 60:
		m := pick()
		if g.rng.IntN(3) > 0 {
			e.User = m.User
		}
		return &events.MessageDeleted{Envelope: e, MessageID: m.MessageID}
	case r < 75:
		return &events.ReactionAdded{Envelope: e, MessageID: pick().MessageID, Emoji: []string{"👍", "🎉", "❤"}[g.rng.IntN(3)]}
	case r < 80:
		return &events.ReactionRemoved{Envelope: e, MessageID: pick().MessageID, Emoji: []string{"👍", "🎉", "❤"}[g.rng.IntN(3)]}
	case r < 92:
		return &events.MemberJoined{Envelope: e}
	case r < 98:
		return &events.MemberLeft{Envelope: e}
	default:
		return &events.WebhookRegistered{Envelope: e, WebhookID: fmt.Sprint("wh-", g.n), URL: "https://example.com/hook", Secret: "s"}
	}
}

// uniqueSends counts the distinct (room, message_id) sent.
func (g *gen) uniqueSends() int {
	n := 0
	for _, msgs := range g.sent {
		seen := map[string]bool{}
		for _, m := range msgs {
			if !seen[m.MessageID] {
				seen[m.MessageID] = true
				n++
			}
		}
	}
	return n
}

// produce appends evs with async produce and waits for every ack.
func produce(t testing.TB, cl *kgo.Client, codec *schemas.Codec, topic string, evs []events.Event) []events.Position {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	pos := make([]events.Position, len(evs))
	errc := make(chan error, 1)
	done := make(chan struct{}, len(evs))
	for i, ev := range evs {
		rec, err := kafka.NewRecord(codec, topic, ev)
		if err != nil {
			t.Fatal(err)
		}
		cl.Produce(ctx, rec, func(r *kgo.Record, err error) {
			if err != nil {
				select {
				case errc <- err:
				default:
				}
			}
			pos[i] = events.Position{Partition: r.Partition, Offset: r.Offset}
			done <- struct{}{}
		})
	}
	for range evs {
		select {
		case <-done:
		case err := <-errc:
			t.Fatalf("produce: %v", err)
		case <-ctx.Done():
			t.Fatal("produce timed out")
		}
	}
	select {
	case err := <-errc:
		t.Fatalf("produce: %v", err)
	default:
	}
	return pos
}

// caughtUp reports whether the store's checkpoints reached ends.
func caughtUp(ctx context.Context, p interface {
	Checkpoints(context.Context) (map[int32]int64, error)
}, ends map[int32]int64) bool {
	cps, err := p.Checkpoints(ctx)
	if err != nil {
		return false
	}
	for part, end := range ends {
		if cps[part] < end {
			return false
		}
	}
	return true
}
