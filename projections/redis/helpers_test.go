package redis_test

import (
	"context"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/rtstack/rtstack/events"
	"github.com/rtstack/rtstack/internal/testsvc"
	"github.com/rtstack/rtstack/projections/redis"
)

// base is a fixed event time far from the wall clock (2021-01-01), so a
// test that passed only because of time.Now would fail.
var base = time.Date(2021, 1, 1, 0, 0, 0, 0, time.UTC).UnixMilli()

const minute = int64(60_000)

func open(t testing.TB, mod ...func(*redis.Config)) (*redis.Projection, *goredis.Client, string) {
	t.Helper()
	rdb, prefix := testsvc.Redis(t)
	return openWith(t, rdb, prefix, mod...), rdb, prefix
}

func openWith(t testing.TB, rdb *goredis.Client, prefix string, mod ...func(*redis.Config)) *redis.Projection {
	t.Helper()
	cfg := redis.Config{Redis: rdb, Prefix: prefix}
	for _, m := range mod {
		m(&cfg)
	}
	p, err := redis.Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func env(room, user string, ts int64) events.Envelope {
	return events.Envelope{ID: fmt.Sprintf("e-%s-%s-%d", room, user, ts), Room: room, User: user, Time: ts}
}

func sent(room, user, mid string, ts int64) events.Event {
	return &events.MessageSent{Envelope: env(room, user, ts), MessageID: mid, ClientID: mid, Text: "hi"}
}

func react(room, user, mid, emoji string, ts int64) events.Event {
	return &events.ReactionAdded{Envelope: env(room, user, ts), MessageID: mid, Emoji: emoji}
}

func unreact(room, user, mid, emoji string, ts int64) events.Event {
	return &events.ReactionRemoved{Envelope: env(room, user, ts), MessageID: mid, Emoji: emoji}
}

func join(room, user string, ts int64) events.Event {
	return &events.MemberJoined{Envelope: env(room, user, ts)}
}

func leave(room, user string, ts int64) events.Event {
	return &events.MemberLeft{Envelope: env(room, user, ts)}
}

// records places evs in partition 0 at offsets from, from+1, …
func records(from int64, evs ...events.Event) []events.Record {
	out := make([]events.Record, len(evs))
	for i, ev := range evs {
		out[i] = events.Record{Position: events.Position{Partition: 0, Offset: from + int64(i)}, Event: ev}
	}
	return out
}

// applyAll applies evs to partition 0 after whatever it has, in one batch.
func applyAll(t testing.TB, p interface {
	Checkpoints(context.Context) (map[int32]int64, error)
	Apply(context.Context, int32, []events.Record, int64) error
}, evs ...events.Event) {
	t.Helper()
	ctx := context.Background()
	cps, err := p.Checkpoints(ctx)
	if err != nil {
		t.Fatal(err)
	}
	from := cps[0]
	if err := p.Apply(ctx, 0, records(from, evs...), from+int64(len(evs))); err != nil {
		t.Fatal(err)
	}
}

func partitionOf(room string, n int32) int32 {
	h := fnv.New32a()
	h.Write([]byte(room))
	return int32(h.Sum32() % uint32(n))
}

// genLog returns a deterministic chat log of n events over rooms, with
// resent messages (same id), out-of-order event times, reactions added
// twice and removed, edits, deletes, joins and leaves.
func genLog(seed uint64, n, rooms, users int) []events.Event {
	rng := rand.New(rand.NewPCG(seed, 0))
	out := make([]events.Event, 0, n)
	clock := base
	type msg struct{ room, id string }
	var msgs []msg
	for i := 0; len(out) < n; i++ {
		clock += rng.Int64N(3000)
		ts := clock
		if rng.IntN(20) == 0 { // a late event, up to 2 hours old
			ts -= rng.Int64N(120 * minute)
		}
		room := fmt.Sprintf("room-%d", rng.IntN(rooms))
		user := fmt.Sprintf("user-%d", rng.IntN(users))
		switch k := rng.IntN(100); {
		case k < 55 || len(msgs) == 0:
			id := fmt.Sprintf("m%d", i)
			out = append(out, sent(room, user, id, ts))
			msgs = append(msgs, msg{room, id})
		case k < 60: // a resend of an earlier message
			m := msgs[rng.IntN(len(msgs))]
			out = append(out, sent(m.room, user, m.id, ts))
		case k < 75:
			m := msgs[len(msgs)-1-rng.IntN(min(len(msgs), 50))]
			out = append(out, react(m.room, user, m.id, []string{"+1", "heart", "tada"}[rng.IntN(3)], ts))
		case k < 80:
			m := msgs[len(msgs)-1-rng.IntN(min(len(msgs), 50))]
			out = append(out, unreact(m.room, user, m.id, []string{"+1", "heart", "tada"}[rng.IntN(3)], ts))
		case k < 88:
			out = append(out, join(room, user, ts))
		case k < 92:
			out = append(out, leave(room, user, ts))
		case k < 96:
			m := msgs[rng.IntN(len(msgs))]
			out = append(out, &events.MessageEdited{Envelope: env(m.room, user, ts), MessageID: m.id, Text: "edited"})
		default:
			m := msgs[rng.IntN(len(msgs))]
			out = append(out, &events.MessageDeleted{Envelope: env(m.room, user, ts), MessageID: m.id})
		}
	}
	return out
}

// partitioned places evs in nparts partitions by room, as the log does.
func partitioned(evs []events.Event, nparts int32) map[int32][]events.Record {
	out := map[int32][]events.Record{}
	for _, ev := range evs {
		p := partitionOf(ev.Env().Room, nparts)
		out[p] = append(out[p], events.Record{Position: events.Position{Partition: p, Offset: int64(len(out[p]))}, Event: ev})
	}
	return out
}
