package redis_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	goredis "github.com/redis/go-redis/v9"

	"github.com/rtstack/rtstack/events"
	"github.com/rtstack/rtstack/infra/kafka"
	"github.com/rtstack/rtstack/infra/kafka/kafkatest"
	"github.com/rtstack/rtstack/internal/testsvc"
	"github.com/rtstack/rtstack/projections"
	"github.com/rtstack/rtstack/projections/projectionstest"
	"github.com/rtstack/rtstack/projections/redis"
)

// wipeScript deletes every key under a prefix in one step, as a restart of
// a Redis without persistence loses them all at once (never FLUSHDB: other
// tests share the server).
var wipeScript = goredis.NewScript(`
local keys = redis.call('KEYS', ARGV[1] .. '*')
for i = 1, #keys, 500 do
  redis.call('DEL', unpack(keys, i, math.min(i + 499, #keys)))
end
return #keys
`)

func wipe(t *testing.T, rdb *goredis.Client, prefix string) {
	t.Helper()
	n, err := wipeScript.Run(context.Background(), rdb, nil, prefix).Int()
	if err != nil {
		t.Fatal(err)
	}
	if n == 0 {
		t.Fatal("nothing to wipe")
	}
}

// onPartition places evs in partition part at offsets from, from+1, …
func onPartition(part int32, from int64, evs ...events.Event) []events.Record {
	out := records(from, evs...)
	for i := range out {
		out[i].Partition = part
	}
	return out
}

// After Redis lost the data, every projector's first Apply of every
// partition answers ErrStoreReset, exactly one of them re-creates the
// active version, reads answer empty meanwhile, and applying from the
// reloaded (empty) checkpoints then works for everyone.
func TestDataLossResetsEveryPartitionOnce(t *testing.T) {
	testsvc.Integration(t)
	rdb, prefix := testsvc.Redis(t)
	ctx := context.Background()
	a, b := openWith(t, rdb, prefix), openWith(t, rdb, prefix) // two projector processes
	const parts = 4
	for part := range int32(parts) {
		room := fmt.Sprintf("room-%d", part)
		recs := onPartition(part, 0, join(room, "ann", base), sent(room, "ann", "m1", base), sent(room, "bob", "m2", base+minute))
		if err := a.Apply(ctx, part, recs, 3); err != nil {
			t.Fatal(err)
		}
	}
	if c := counters(t, a, "room-1"); c.Total != 2 {
		t.Fatalf("room-1 total %d before the loss, want 2", c.Total)
	}
	rdbEmpty, prefixEmpty := testsvc.Redis(t)
	empty := digest(t, openWith(t, rdbEmpty, prefixEmpty))

	wipe(t, rdb, prefix)

	// Reads answer empty, not errors, until something re-creates the data.
	if c, err := a.Counters(ctx, "room-1"); err != nil || c.Total != 0 || c.Members != 0 || len(c.PerMinute) != 0 {
		t.Errorf("counters after the loss = %+v, %v; want empty", c, err)
	}
	if lb, err := a.Leaderboard(ctx, 10); err != nil || len(lb) != 0 {
		t.Errorf("leaderboard after the loss = %v, %v; want empty", lb, err)
	}
	if cps, err := a.Checkpoints(ctx); err != nil || len(cps) != 0 {
		t.Errorf("checkpoints after the loss = %v, %v; want none", cps, err)
	}
	if d, err := a.Digest(ctx); err != nil || d != empty {
		t.Errorf("digest after the loss = %s, %v; want the empty projection's %s", d, err, empty)
	}

	// Both processes apply the next records of every partition at once.
	var wg sync.WaitGroup
	errs := make(chan error, 2*parts)
	for _, p := range []*redis.Projection{a, b} {
		for part := range int32(parts) {
			wg.Add(1)
			go func() {
				defer wg.Done()
				room := fmt.Sprintf("room-%d", part)
				errs <- p.Apply(ctx, part, onPartition(part, 3, sent(room, "cat", "m3", base+2*minute)), 4)
			}()
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if !errors.Is(err, projections.ErrStoreReset) {
			t.Errorf("apply after the loss: %v, want ErrStoreReset", err)
		}
	}
	if n, err := rdb.SCard(ctx, prefix+"versions").Result(); err != nil || n != 1 {
		t.Errorf("%d versions after the racing re-creations (%v), want exactly 1", n, err)
	}
	if v, err := a.ActiveVersion(ctx); err != nil || v == "" {
		t.Errorf("no active version after the reset: %v", err)
	}
	if c := counters(t, a, "room-1"); c.Total != 0 {
		t.Errorf("a reset applied records: room-1 total %d", c.Total)
	}

	// The runtime reloads the checkpoints (empty) and replays from zero;
	// the other process, reset too, continues where the replay left off.
	for part := range int32(parts) {
		room := fmt.Sprintf("room-%d", part)
		recs := onPartition(part, 0, join(room, "ann", base), sent(room, "ann", "m1", base), sent(room, "bob", "m2", base+minute))
		if err := a.Apply(ctx, part, recs, 3); err != nil {
			t.Fatal(err)
		}
		if err := b.Apply(ctx, part, onPartition(part, 3, sent(room, "cat", "m3", base+2*minute)), 4); err != nil {
			t.Fatal(err)
		}
	}
	for part := range parts {
		if c := counters(t, b, fmt.Sprintf("room-%d", part)); c.Total != 3 || c.Members != 1 {
			t.Errorf("room-%d after the replay: %+v, want 3 messages and 1 member", part, c)
		}
	}
	// A version being built vanished with the data: its store resets too
	// (a rebuild fails instead of retrying forever).
	st, _, err := a.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	wipe(t, rdb, prefix)
	if err := st.Apply(ctx, 0, onPartition(0, 0, join("room-0", "ann", base)), 1); !errors.Is(err, projections.ErrStoreReset) {
		t.Errorf("apply into a vanished version: %v, want ErrStoreReset", err)
	}
}

// A projector over Redis: Redis loses every key of the projection while
// the projector runs. With no new record the idle probe notices and the
// log is replayed from offset zero; records appended afterwards apply on
// top. The end state equals a clean rebuild into a fresh prefix: nothing
// lost, nothing doubled.
func TestProjectorReplaysAfterRedisLosesData(t *testing.T) {
	const rooms = 10
	evs := genLog(23, 6_000, rooms, 50)
	first, second := evs[:3_000], evs[3_000:]
	addr := produceLog(t, first)
	rdb, prefix := testsvc.Redis(t)
	p := openWith(t, rdb, prefix)
	reg := prometheus.NewRegistry()
	cfg := projectorConfig(t, addr, p, "loss")
	cfg.LagInterval = 200 * time.Millisecond
	cfg.Registerer = reg
	projectionstest.Run(t, cfg)
	ctx := context.Background()
	ends := endOffsets(t, addr)
	testsvc.Eventually(t, time.Minute, "first half applied", func() bool {
		cps, _ := p.Checkpoints(ctx)
		return caughtUp(cps, ends)
	})
	checkModel(t, p, first, rooms)
	before := digest(t, p)

	wipe(t, rdb, prefix)
	testsvc.Eventually(t, time.Minute, "the idle projector to notice the loss and replay", func() bool {
		cps, _ := p.Checkpoints(ctx)
		return caughtUp(cps, ends)
	})
	if got := digest(t, p); got != before {
		t.Errorf("digest after the replay %s, before the loss %s", got, before)
	}
	used := 0 // partitions with records: each had something to lose
	for _, e := range ends {
		if e > 0 {
			used++
		}
	}
	if n := counterValue(t, reg, "rtstack_projection_store_resets_total"); n < float64(used) {
		t.Errorf("store resets counted %v, want at least one per partition with records (%d)", n, used)
	}

	// Lose it again while new records arrive, then check everything.
	lg := kafka.NewLog(kafkatest.Client(t, addr), kafkatest.Codec(t), topic)
	for i, ev := range second {
		if i == 200 {
			wipe(t, rdb, prefix)
		}
		if _, err := lg.Append(ctx, ev); err != nil {
			t.Fatal(err)
		}
	}
	ends = endOffsets(t, addr)
	testsvc.Eventually(t, time.Minute, "the whole log applied after the second loss", func() bool {
		cps, _ := p.Checkpoints(ctx)
		return caughtUp(cps, ends)
	})
	checkModel(t, p, evs, rooms)

	rdbClean, prefixClean := testsvc.Redis(t)
	clean := openWith(t, rdbClean, prefixClean)
	if err := projections.Rebuild(ctx, projections.RebuildConfig{
		Kafka: kafka.ClientConfig{Brokers: []string{addr}}, Topic: topic, Codec: kafkatest.Codec(t), Target: clean,
	}); err != nil {
		t.Fatal(err)
	}
	if got, want := digest(t, p), digest(t, clean); got != want {
		t.Errorf("digest after two losses %s, clean rebuild into a fresh prefix %s", got, want)
	}
}

func counterValue(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	return testsvc.Sum(t, reg, name)
}
