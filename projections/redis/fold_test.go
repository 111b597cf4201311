package redis_test

import (
	"context"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/rtstack/rtstack/events"
	"github.com/rtstack/rtstack/projections/redis"
	"github.com/rtstack/rtstack/projections/view"
)

func counters(t *testing.T, p *redis.Projection, room string) view.Counters {
	t.Helper()
	c, err := p.Counters(context.Background(), room)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// nonZero returns the buckets with a count, as minute offsets from base.
func nonZero(c view.Counters) map[int64]int64 {
	out := map[int64]int64{}
	for _, m := range c.PerMinute {
		if m.Count != 0 {
			out[(m.Minute-base)/minute] = m.Count
		}
	}
	return out
}

func board(t *testing.T, f func(context.Context, int) ([]view.ScoreEntry, error)) []view.ScoreEntry {
	t.Helper()
	b, err := f(context.Background(), 0)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestMessagesCountOncePerID(t *testing.T) {
	p, _, _ := open(t)
	applyAll(t, p,
		sent("a", "ann", "m1", base),
		sent("a", "ann", "m1", base+10), // resent: same id
		sent("a", "bob", "m2", base+20),
		sent("b", "ann", "m1", base+30), // same id, other room: another message
	)
	applyAll(t, p, sent("a", "ann", "m1", base+40)) // and again in a later batch
	if c := counters(t, p, "a"); c.Total != 2 {
		t.Errorf("room a total = %d, want 2", c.Total)
	}
	if c := counters(t, p, "b"); c.Total != 1 {
		t.Errorf("room b total = %d, want 1", c.Total)
	}
	want := []view.ScoreEntry{{User: "ann", Score: 2}, {User: "bob", Score: 1}}
	if got := board(t, p.Leaderboard); !reflect.DeepEqual(got, want) {
		t.Errorf("leaderboard = %v, want %v", got, want)
	}
	wantA := []view.ScoreEntry{{User: "ann", Score: 1}, {User: "bob", Score: 1}}
	got, err := p.RoomLeaderboard(context.Background(), "a", 5)
	if err != nil || !reflect.DeepEqual(got, wantA) {
		t.Errorf("room leaderboard = %v, %v; want %v (ties by user id)", got, err, wantA)
	}
}

func TestPerMinuteBucketsByEventTime(t *testing.T) {
	p, _, _ := open(t)
	applyAll(t, p,
		sent("a", "ann", "m1", base+1_000),
		sent("a", "ann", "m2", base+59_999),
		sent("a", "ann", "m3", base+60_000),
		sent("a", "ann", "m4", base+5*minute+1),
		sent("a", "ann", "m5", base+2*minute), // late but inside the window
	)
	c := counters(t, p, "a")
	if len(c.PerMinute) != 60 {
		t.Fatalf("per_minute has %d entries, want 60", len(c.PerMinute))
	}
	if last := c.PerMinute[59].Minute; last != base+5*minute {
		t.Errorf("last minute = %d, want the newest event minute %d", last, base+5*minute)
	}
	for i := 1; i < len(c.PerMinute); i++ {
		if c.PerMinute[i].Minute != c.PerMinute[i-1].Minute+minute {
			t.Fatalf("per_minute not consecutive oldest first at %d: %v", i, c.PerMinute[i-1:i+1])
		}
	}
	want := map[int64]int64{0: 2, 1: 1, 2: 1, 5: 1}
	if got := nonZero(c); !reflect.DeepEqual(got, want) {
		t.Errorf("buckets = %v, want %v", got, want)
	}
	if c := counters(t, p, "nobody"); c.Total != 0 || len(c.PerMinute) != 0 || c.Members != 0 {
		t.Errorf("unknown room = %+v, want zeros and no buckets", c)
	}
}

func TestTrimmingFollowsEventTime(t *testing.T) {
	p, rdb, prefix := open(t, func(c *redis.Config) { c.Window = 10 * time.Minute })
	ctx := context.Background()
	// Events years before the wall clock: nothing is trimmed by now.
	applyAll(t, p, sent("a", "ann", "m1", base), sent("a", "ann", "m2", base+3*minute))
	if got, want := nonZero(counters(t, p, "a")), map[int64]int64{0: 1, 3: 1}; !reflect.DeepEqual(got, want) {
		t.Fatalf("buckets = %v, want %v", got, want)
	}
	// The newest minute moves to 10: minute 0 falls out of the 10-minute window.
	applyAll(t, p, sent("a", "ann", "m3", base+10*minute))
	c := counters(t, p, "a")
	if got, want := nonZero(c), map[int64]int64{3: 1, 10: 1}; !reflect.DeepEqual(got, want) {
		t.Errorf("buckets = %v, want %v", got, want)
	}
	if len(c.PerMinute) != 10 || c.PerMinute[0].Minute != base+minute {
		t.Errorf("per_minute = %d entries from %d, want 10 from minute 1", len(c.PerMinute), c.PerMinute[0].Minute)
	}
	// The trimmed bucket is gone from Redis, not just hidden.
	active, _ := p.ActiveVersion(ctx)
	fields, err := rdb.HKeys(ctx, prefix+active+":r:a:pm").Result()
	if err != nil || len(fields) != 2 {
		t.Errorf("pm hash fields = %v, %v; want 2", fields, err)
	}
	// A late event older than the window counts in the total but gets no
	// bucket; one inside the window does.
	applyAll(t, p, sent("a", "bob", "m4", base+30_000), sent("a", "bob", "m5", base+9*minute))
	c = counters(t, p, "a")
	if got, want := nonZero(c), map[int64]int64{3: 1, 9: 1, 10: 1}; !reflect.DeepEqual(got, want) {
		t.Errorf("buckets after late events = %v, want %v", got, want)
	}
	if c.Total != 5 {
		t.Errorf("total = %d, want 5", c.Total)
	}
}

func TestReactionsReceived(t *testing.T) {
	p, _, _ := open(t)
	applyAll(t, p,
		sent("a", "ann", "m1", base),
		sent("a", "bob", "m2", base),
		react("a", "bob", "m1", "+1", base),
		react("a", "bob", "m1", "+1", base), // duplicate add: once
		react("a", "cat", "m1", "+1", base),
		react("a", "cat", "m1", "heart", base),
		react("a", "ann", "m2", "tada", base),
		react("a", "ann", "nope", "tada", base),   // unknown message: ignored
		unreact("a", "cat", "m2", "+1", base),     // never added: nothing to take back
		unreact("a", "ann", "nope", "tada", base), // unknown message
	)
	want := []view.ScoreEntry{{User: "ann", Score: 3}, {User: "bob", Score: 1}}
	if got := board(t, p.ReactionsBoard); !reflect.DeepEqual(got, want) {
		t.Fatalf("reactions board = %v, want %v", got, want)
	}
	applyAll(t, p,
		unreact("a", "cat", "m1", "heart", base),
		unreact("a", "cat", "m1", "heart", base), // removed twice: once
		unreact("a", "ann", "m2", "tada", base),
		react("a", "bob", "m1", "+1", base), // still in the set: no point
	)
	want = []view.ScoreEntry{{User: "ann", Score: 2}}
	if got := board(t, p.ReactionsBoard); !reflect.DeepEqual(got, want) {
		t.Errorf("reactions board after removals = %v, want %v (zero scores removed)", got, want)
	}
	// Deleting and editing a message changes no counter.
	applyAll(t, p,
		&events.MessageDeleted{Envelope: env("a", "ann", base), MessageID: "m1"},
		&events.MessageEdited{Envelope: env("a", "bob", base), MessageID: "m2", Text: "x"},
		react("a", "dan", "m1", "tada", base),
	)
	if c := counters(t, p, "a"); c.Total != 2 {
		t.Errorf("total after delete = %d, want 2 (deleted messages were sent)", c.Total)
	}
	want = []view.ScoreEntry{{User: "ann", Score: 3}}
	if got := board(t, p.ReactionsBoard); !reflect.DeepEqual(got, want) {
		t.Errorf("reactions board after delete = %v, want %v", got, want)
	}
}

func TestMembers(t *testing.T) {
	p, _, _ := open(t)
	applyAll(t, p,
		join("a", "ann", base), join("a", "ann", base), join("a", "bob", base),
		join("b", "ann", base), leave("a", "cat", base),
	)
	if c := counters(t, p, "a"); c.Members != 2 {
		t.Errorf("members of a = %d, want 2", c.Members)
	}
	applyAll(t, p, leave("a", "ann", base), leave("a", "ann", base))
	if c := counters(t, p, "a"); c.Members != 1 {
		t.Errorf("members of a after leave = %d, want 1", c.Members)
	}
	if c := counters(t, p, "b"); c.Members != 1 {
		t.Errorf("members of b = %d, want 1", c.Members)
	}
}

func TestLeaderboardLimit(t *testing.T) {
	p, _, _ := open(t)
	var evs []events.Event
	for i, u := range []string{"a", "b", "b", "c", "c", "c", "d"} {
		evs = append(evs, sent("r", u, "m"+string(rune('0'+i)), base))
	}
	applyAll(t, p, evs...)
	got, err := p.Leaderboard(context.Background(), 2)
	want := []view.ScoreEntry{{User: "c", Score: 3}, {User: "b", Score: 2}}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("top 2 = %v, %v; want %v", got, err, want)
	}
}

// TestChunkFoldEqualsEventByEvent: a chunk folds its records in memory and
// writes each key once; the result must be what applying the same records
// one Apply each gives. The log reuses keys heavily (three rooms, five
// users, many messages per minute, resends, reactions added twice and
// taken back, joins and leaves, a window short enough to trim), and is
// folded as one chunk, as chunks of 7, and event by event.
func TestChunkFoldEqualsEventByEvent(t *testing.T) {
	ctx := context.Background()
	evs := genLog(11, 3_000, 3, 5)
	window := func(c *redis.Config) { c.Window = 5 * time.Minute }
	one, _, _ := open(t, window, func(c *redis.Config) { c.ChunkSize = len(evs) })
	applyAll(t, one, evs...)
	sevens, _, _ := open(t, window, func(c *redis.Config) { c.ChunkSize = 7 })
	applyAll(t, sevens, evs...)
	each, _, _ := open(t, window)
	for _, r := range records(0, evs...) {
		if err := each.Apply(ctx, 0, []events.Record{r}, r.Offset+1); err != nil {
			t.Fatal(err)
		}
	}
	want := digest(t, each)
	if got := digest(t, one); got != want {
		t.Errorf("one chunk digests %s, event by event %s", got, want)
	}
	if got := digest(t, sevens); got != want {
		t.Errorf("chunks of 7 digest %s, event by event %s", got, want)
	}
	// The log did exercise every rule: a non-trivial state.
	c := counters(t, each, "room-0")
	if c.Total < 100 || c.Members == 0 || len(nonZero(c)) == 0 {
		t.Errorf("room-0 counters %+v: the log should leave messages, members and buckets", c)
	}
	if rx := board(t, each.ReactionsBoard); len(rx) == 0 {
		t.Error("no reactions counted: the log should leave some")
	}
}

// edgeLog exercises every event type and the edge rules in room "edge":
// a reaction before its message exists, self-reactions, the cap on one
// user's reactions on one message, removals past the cap and twice, a
// resend by another user (the author stays), joins and leaves repeated,
// a jump of the newest minute far past the window, late events inside and
// outside it, and events that change nothing (edits, deletes, webhooks).
func edgeLog() []events.Event {
	const r = "edge"
	evs := []events.Event{
		react(r, "bob", "m1", "early", base), // unknown message yet
		sent(r, "ann", "m1", base),
		react(r, "ann", "m1", "self", base), // own message
	}
	for i := range events.MaxReactionsPerUser + 3 {
		evs = append(evs, react(r, "bob", "m1", fmt.Sprint("e", i), base+int64(i)))
	}
	evs = append(evs,
		unreact(r, "bob", "m1", fmt.Sprint("e", events.MaxReactionsPerUser+2), base), // past the cap: never scored
		unreact(r, "bob", "m1", "e0", base),
		react(r, "bob", "m1", "again", base),
		sent(r, "cat", "m1", base+minute), // a resend by another user
		react(r, "cat", "m1", "+1", base),
		unreact(r, "cat", "m1", "+1", base),
		unreact(r, "cat", "m1", "+1", base), // twice
		unreact(r, "ann", "m1", "self", base),
		join(r, "dan", base), join(r, "dan", base), leave(r, "dan", base), leave(r, "eve", base), join(r, "ann", base),
		sent(r, "bob", "m2", base+2*minute),
		&events.MessageEdited{Envelope: env(r, "bob", base), MessageID: "m2", Text: "x"},
		&events.MessageDeleted{Envelope: env(r, "bob", base), MessageID: "m2"},
		react(r, "ann", "m2", "+1", base), // on a deleted message: the usual rules
		&events.WebhookRegistered{Envelope: env(r, "ann", base), WebhookID: "w1", URL: "https://example.com/hook", Secret: events.SealedSecretPrefix + "x"},
		sent(r, "ann", "m3", base+200*minute), // the newest minute jumps far past the window
		sent(r, "bob", "m4", base+3*minute),   // late, outside the window: total and boards only
		sent(r, "cat", "m5", base+198*minute), // late, inside it
		react(r, "bob", "m3", "+1", base),
	)
	return evs
}

// TestBuiltVersionEqualsLive: a version built in Go (chunks folded in
// memory, one read and one write per key per chunk) equals the live
// projection fed the same log event by event, whatever the chunk size
// (7 records puts boundaries in the middle of every key's history), with
// the id filter or with one that says "maybe" for every id, over two
// partitions; a batch applied again changes nothing; and once promoted the
// version keeps following the live rules.
func TestBuiltVersionEqualsLive(t *testing.T) {
	ctx := context.Background()
	evs := append(edgeLog(), genLog(5, 3_000, 4, 6)...)
	evs = append(evs, edgeLog()...) // again: every edge now meets existing state
	parts := partitioned(evs, 2)
	window := func(c *redis.Config) { c.Window = 5 * time.Minute }
	for _, tc := range []struct {
		name  string
		chunk int
		bits  int
	}{{"chunks of 7", 7, 0}, {"chunks of 500, filter always maybe", 500, 64}, {"one chunk per batch", 0, 0}} {
		t.Run(tc.name, func(t *testing.T) {
			p, _, _ := open(t, window, func(c *redis.Config) { c.BuildChunkSize = tc.chunk })
			for part, recs := range parts {
				for _, r := range recs[:len(recs)-40] {
					if err := p.Apply(ctx, part, []events.Record{r}, r.Offset+1); err != nil {
						t.Fatal(err)
					}
				}
			}
			store, ver, err := p.Begin(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if tc.bits > 0 {
				redis.SetIDFilterBits(store, tc.bits)
			}
			for part, recs := range parts {
				built := recs[:len(recs)-40]
				applyBatches(t, store, part, built, 900)
				applyBatches(t, store, part, built[len(built)/2:], 900) // retried: below the checkpoint
			}
			live := digest(t, p)
			if got, err := p.DigestVersion(ctx, ver); err != nil || got != live {
				t.Fatalf("built version digests %s, %v; live %s", got, err, live)
			}
			if ok, err := p.Promote(ctx, ver); err != nil || !ok {
				t.Fatalf("promote: %v, %v", ok, err)
			}
			other, _, _ := open(t, window)
			for part, recs := range parts {
				applyBatches(t, store, part, recs[len(recs)-40:], 15) // the version is live now
				for _, r := range recs {
					if err := other.Apply(ctx, part, []events.Record{r}, r.Offset+1); err != nil {
						t.Fatal(err)
					}
				}
			}
			if got, want := digest(t, p), digest(t, other); got != want {
				t.Errorf("after promotion the version digests %s, the live projection %s", got, want)
			}
		})
	}
}

// applyBatches applies recs to s in batches of n.
func applyBatches(t *testing.T, s interface {
	Apply(context.Context, int32, []events.Record, int64) error
}, part int32, recs []events.Record, n int) {
	t.Helper()
	for from := 0; from < len(recs); from += n {
		b := recs[from:min(from+n, len(recs))]
		if err := s.Apply(context.Background(), part, b, b[len(b)-1].Offset+1); err != nil {
			t.Fatal(err)
		}
	}
}
