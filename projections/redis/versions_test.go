package redis_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"reflect"
	"runtime"
	"sort"
	"sync"
	"sync/atomic"
	"testing"

	goredis "github.com/redis/go-redis/v9"

	"github.com/rtstack/rtstack/events"
	"github.com/rtstack/rtstack/projections/redis"
	"github.com/rtstack/rtstack/projections/view"
)

func digest(t testing.TB, p *redis.Projection) string {
	t.Helper()
	d, err := p.Digest(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestRetriedBatchAppliesOnce(t *testing.T) {
	p, _, _ := open(t, func(c *redis.Config) { c.ChunkSize = 2 })
	ctx := context.Background()
	recs := records(0,
		sent("a", "ann", "m1", base), join("a", "ann", base), react("a", "bob", "m1", "+1", base),
		unreact("a", "bob", "m1", "+1", base), react("a", "cat", "m1", "+1", base), sent("a", "bob", "m2", base+minute),
	)
	if err := p.Apply(ctx, 0, recs, 6); err != nil {
		t.Fatal(err)
	}
	first := digest(t, p)
	// The same batch again (the outcome of the first was unknown), then one
	// overlapping the checkpoint: nothing below offset 6 applies again.
	if err := p.Apply(ctx, 0, recs, 6); err != nil {
		t.Fatal(err)
	}
	if err := p.Apply(ctx, 0, recs[3:], 6); err != nil {
		t.Fatal(err)
	}
	if got := digest(t, p); got != first {
		t.Errorf("digest changed by a retried batch: %s → %s", first, got)
	}
	more := append(recs[4:], records(6, react("a", "dan", "m1", "+1", base))...)
	if err := p.Apply(ctx, 0, more, 7); err != nil {
		t.Fatal(err)
	}
	if b := board(t, p.ReactionsBoard); !reflect.DeepEqual(b, []view.ScoreEntry{{User: "ann", Score: 2}}) {
		t.Errorf("reactions board = %v, want ann:2 (offsets 4,5 once, 6 new)", b)
	}
	if c := counters(t, p, "a"); c.Total != 2 || c.Members != 1 {
		t.Errorf("counters = %+v, want total 2, members 1", c)
	}
	cps, err := p.Checkpoints(ctx)
	if err != nil || !reflect.DeepEqual(cps, map[int32]int64{0: 7}) {
		t.Errorf("checkpoints = %v, %v; want 0:7", cps, err)
	}
	// The checkpoint never moves back.
	if err := p.Apply(ctx, 0, nil, 3); err != nil {
		t.Fatal(err)
	}
	if cps, _ := p.Checkpoints(ctx); cps[0] != 7 {
		t.Errorf("checkpoint moved back to %d", cps[0])
	}
	if err := p.Apply(ctx, 0, recs, 5); err == nil {
		t.Error("Apply with next not past the last record: no error")
	}
}

// model is the fold rules written plainly in Go, to check the scripts.
type model struct {
	total   map[string]int64
	members map[string]map[string]bool
	sent    map[string]int64
	rx      map[string]int64
	author  map[[2]string]string
	rxSet   map[string]bool
}

func fold(evs []events.Event) model {
	m := model{map[string]int64{}, map[string]map[string]bool{}, map[string]int64{}, map[string]int64{}, map[[2]string]string{}, map[string]bool{}}
	for _, ev := range evs {
		e := ev.Env()
		switch ev := ev.(type) {
		case *events.MessageSent:
			k := [2]string{e.Room, ev.MessageID}
			if _, ok := m.author[k]; !ok {
				m.author[k] = e.User
				m.total[e.Room]++
				m.sent[e.User]++
			}
		case *events.ReactionAdded:
			if a, ok := m.author[[2]string{e.Room, ev.MessageID}]; ok {
				k := e.Room + "\x00" + ev.MessageID + "\x00" + e.User + "\x00" + ev.Emoji
				if !m.rxSet[k] {
					m.rxSet[k] = true
					m.rx[a]++
				}
			}
		case *events.ReactionRemoved:
			if a, ok := m.author[[2]string{e.Room, ev.MessageID}]; ok {
				k := e.Room + "\x00" + ev.MessageID + "\x00" + e.User + "\x00" + ev.Emoji
				if m.rxSet[k] {
					delete(m.rxSet, k)
					m.rx[a]--
				}
			}
		case *events.MemberJoined:
			if m.members[e.Room] == nil {
				m.members[e.Room] = map[string]bool{}
			}
			m.members[e.Room][e.User] = true
		case *events.MemberLeft:
			delete(m.members[e.Room], e.User)
		}
	}
	return m
}

func top(scores map[string]int64) []view.ScoreEntry {
	var out []view.ScoreEntry
	for u, s := range scores {
		if s > 0 {
			out = append(out, view.ScoreEntry{User: u, Score: s})
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Score != out[j].Score {
			return out[i].Score > out[j].Score
		}
		return out[i].User < out[j].User
	})
	return out
}

func checkModel(t *testing.T, p *redis.Projection, evs []events.Event, rooms int) {
	t.Helper()
	ctx := context.Background()
	m := fold(evs)
	for i := range rooms {
		room := fmt.Sprintf("room-%d", i)
		c := counters(t, p, room)
		if c.Total != m.total[room] || c.Members != int64(len(m.members[room])) {
			t.Errorf("%s: total %d members %d, model %d %d", room, c.Total, c.Members, m.total[room], len(m.members[room]))
		}
	}
	lb, err := p.Leaderboard(ctx, redis.MaxLimit)
	if err != nil || !reflect.DeepEqual(lb, top(m.sent)) {
		t.Errorf("leaderboard = %v, %v\nmodel %v", lb, err, top(m.sent))
	}
	rx, err := p.ReactionsBoard(ctx, redis.MaxLimit)
	if err != nil || !reflect.DeepEqual(rx, top(m.rx)) {
		t.Errorf("reactions board = %v, %v\nmodel %v", rx, err, top(m.rx))
	}
}

// liveWithCrashes applies the log the way a live projector that keeps
// crashing would: small batches, partitions interleaved, some batches cut
// after a chunk, some retried, and a fresh Projection (a restart) that
// resumes from Checkpoints now and then.
func liveWithCrashes(t *testing.T, rdb *goredis.Client, prefix string, log map[int32][]events.Record, seed uint64) *redis.Projection {
	t.Helper()
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(seed, 1))
	restart := func() *redis.Projection {
		return openWith(t, rdb, prefix, func(c *redis.Config) { c.ChunkSize = 1 + rng.IntN(8) })
	}
	p := restart()
	cps, err := p.Checkpoints(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for done := false; !done; {
		done = true
		for part, recs := range log {
			from := cps[part]
			if from >= int64(len(recs)) {
				continue
			}
			done = false
			batch := recs[from:min(from+1+rng.Int64N(40), int64(len(recs)))]
			next := batch[len(batch)-1].Offset + 1
			switch rng.IntN(10) {
			case 0: // crashed after some chunks: only a prefix is stored
				cut := rng.IntN(len(batch))
				batch, next = batch[:cut], batch[cut].Offset
			case 1: // a retry of records already applied along with new ones
				batch = recs[max(0, from-5):next]
			}
			if err := p.Apply(ctx, part, batch, next); err != nil {
				t.Fatal(err)
			}
			if rng.IntN(15) == 0 {
				p = restart()
				if cps, err = p.Checkpoints(ctx); err != nil {
					t.Fatal(err)
				}
				continue
			}
			cps[part] = next
		}
	}
	return p
}

func TestRebuildMatchesLiveAndPromotes(t *testing.T) {
	const rooms = 12
	evs := genLog(7, 12_000, rooms, 40)
	log := partitioned(evs, 4)
	_, rdb, prefix := open(t)
	ctx := context.Background()

	live := liveWithCrashes(t, rdb, prefix, log, 7)
	checkModel(t, live, evs, rooms)
	want := digest(t, live)
	oldVer, _ := live.ActiveVersion(ctx)
	wantCounters := counters(t, live, "room-3")
	wantBoard := board(t, live.Leaderboard)

	// Rebuild in big batches into a new version while the old one serves.
	store, ver, err := live.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if ver == oldVer {
		t.Fatalf("Begin returned the active version %s", ver)
	}
	if cps, err := store.Checkpoints(ctx); err != nil || len(cps) != 0 {
		t.Fatalf("new version checkpoints = %v, %v; want empty", cps, err)
	}
	for part, recs := range log {
		half := len(recs) / 2
		if err := store.Apply(ctx, part, recs[:half], int64(half)); err != nil {
			t.Fatal(err)
		}
	}
	if ok, err := live.Promote(ctx, ver); err != nil || ok {
		t.Fatalf("Promote of a version half-way = %v, %v; want false", ok, err)
	}
	if got := digest(t, live); got != want {
		t.Fatalf("active digest changed by the rebuild's writes")
	}
	for part, recs := range log {
		half := len(recs) / 2
		if err := store.Apply(ctx, part, recs[half:], int64(len(recs))); err != nil {
			t.Fatal(err)
		}
	}
	if got, err := live.DigestVersion(ctx, ver); err != nil || got != want {
		t.Fatalf("rebuilt digest = %s, %v; live %s", got, err, want)
	}

	// Reads keep answering the same content while the pointer flips.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var reads, bad atomic.Int64
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			c, err := live.Counters(ctx, "room-3")
			b, err2 := live.Leaderboard(ctx, 0)
			reads.Add(1)
			if err != nil || err2 != nil || !reflect.DeepEqual(c, wantCounters) || !reflect.DeepEqual(b, wantBoard) {
				bad.Add(1)
			}
		}
	}()
	for reads.Load() < 20 {
		runtime.Gosched()
	}
	ok, err := live.Promote(ctx, ver)
	for n := reads.Load(); reads.Load() < n+20; {
		runtime.Gosched()
	}
	close(stop)
	wg.Wait()
	if err != nil || !ok {
		t.Fatalf("Promote = %v, %v; want true", ok, err)
	}
	if bad.Load() != 0 {
		t.Errorf("%d of %d reads during the swap were wrong", bad.Load(), reads.Load())
	}
	if active, _ := live.ActiveVersion(ctx); active != ver {
		t.Errorf("active = %s, want %s", active, ver)
	}
	if got := digest(t, live); got != want {
		t.Errorf("digest after promote = %s, want %s", got, want)
	}
	if keys, _, err := rdb.Scan(ctx, 0, prefix+oldVer+":*", 100000).Result(); err != nil || len(keys) != 0 {
		t.Errorf("old version keys left: %d (%v)", len(keys), err)
	}
	if err := live.Abandon(ctx, ver); err == nil {
		t.Error("Abandon of the active version: no error")
	}

	// The live store now writes into the promoted version.
	applyAll(t, live, sent("room-new", "zed", "mz", base))
	if c := counters(t, live, "room-new"); c.Total != 1 {
		t.Errorf("live write after promote not visible: %+v", c)
	}
}

func TestAbandonDropsVersion(t *testing.T) {
	p, rdb, prefix := open(t)
	ctx := context.Background()
	applyAll(t, p, sent("a", "ann", "m1", base))
	want := digest(t, p)
	s, ver, err := p.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	applyAll(t, s, sent("a", "bob", "m2", base), join("a", "bob", base))
	if err := p.Abandon(ctx, ver); err != nil {
		t.Fatal(err)
	}
	if keys, _, _ := rdb.Scan(ctx, 0, prefix+ver+":*", 100000).Result(); len(keys) != 0 {
		t.Errorf("abandoned version keys left: %v", keys)
	}
	if err := s.Apply(ctx, 0, records(5, join("a", "cat", base)), 6); err == nil {
		t.Error("Apply into an abandoned version: no error")
	}
	if ok, err := p.Promote(ctx, ver); err == nil || ok {
		t.Errorf("Promote of an abandoned version = %v, %v; want error", ok, err)
	}
	if got := digest(t, p); got != want {
		t.Errorf("active digest changed")
	}
}
