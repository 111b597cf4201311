package redis_test

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/rtstack/rtstack/events"
	"github.com/rtstack/rtstack/infra/kafka"
	"github.com/rtstack/rtstack/infra/kafka/kafkatest"
	"github.com/rtstack/rtstack/projections"
)

const benchEvents = 1_000_000

// BenchmarkReplayRedis replays benchEvents events three ways in the same
// run: pre-decoded records through the Store (one script per chunk,
// checkpoints, dedupe, trimming) into a fresh version; the whole path of a
// rebuild (projections.Rebuild from the embedded broker: fetch, Avro
// decode, Store, promote); and as the baseline the same writes as plain
// pipelined commands (no scripts, no reads, no checkpoints). Reports each
// rate and the ratios to the baseline (goal: ratio >= 0.5), and Redis's
// own CPU time per event on each path (INFO cpu around each phase; other
// clients of the same Redis count too).
//
//	go test -run '^$' -bench BenchmarkReplayRedis -benchtime 1x ./projections/redis/
func BenchmarkReplayRedis(b *testing.B) {
	evs := genLog(42, benchEvents, 200, 2000)
	// The store and the baseline alternate over segments of the log, so a
	// change in the machine's load weighs on both alike.
	const segments = 10
	segLen := benchEvents / segments
	segs := make([]map[int32][]events.Record, segments)
	next := map[int32]int64{}
	for k := range segs {
		segs[k] = map[int32][]events.Record{}
		for _, ev := range evs[k*segLen : (k+1)*segLen] {
			part := partitionOf(ev.Env().Room, 6)
			segs[k][part] = append(segs[k][part], events.Record{Position: events.Position{Partition: part, Offset: next[part]}, Event: ev})
			next[part]++
		}
	}
	addr := produceLog(b, evs)
	ctx := context.Background()
	p, rdb, prefix := open(b)
	var storeDur, rebuildDur, rawDur time.Duration
	var storeCPU, rebuildCPU, rawCPU float64 // Redis CPU seconds
	b.ResetTimer()
	for i := range b.N {
		store, ver, err := p.Begin(ctx)
		if err != nil {
			b.Fatal(err)
		}
		raw := prefix + "raw" + strconv.Itoa(i) + ":"
		for k, seg := range segs {
			start, cpu := time.Now(), redisCPU(b, rdb)
			applySegment(ctx, b, store, seg)
			storeDur += time.Since(start)
			now := redisCPU(b, rdb)
			storeCPU += now - cpu
			start, cpu = time.Now(), now
			rawReplay(ctx, b, rdb, raw, evs[k*segLen:(k+1)*segLen])
			rawDur += time.Since(start)
			rawCPU += redisCPU(b, rdb) - cpu
		}
		b.StopTimer()
		if err := p.Abandon(ctx, ver); err != nil {
			b.Fatal(err)
		}
		dropPrefix(ctx, b, rdb, raw)
		b.StartTimer()

		start, cpu := time.Now(), redisCPU(b, rdb)
		if err := projections.Rebuild(ctx, projections.RebuildConfig{
			Kafka: kafka.ClientConfig{Brokers: []string{addr}}, Topic: topic, Codec: kafkatest.Codec(b), Target: p,
		}); err != nil {
			b.Fatal(err)
		}
		rebuildDur += time.Since(start)
		rebuildCPU += redisCPU(b, rdb) - cpu
	}
	total := float64(benchEvents * b.N)
	storeRate := total / storeDur.Seconds()
	rebuildRate := total / rebuildDur.Seconds()
	rawRate := total / rawDur.Seconds()
	b.ReportMetric(storeRate, "store_events/s")
	b.ReportMetric(rebuildRate, "rebuild_events/s")
	b.ReportMetric(rawRate, "raw_events/s")
	b.ReportMetric(storeRate/rawRate, "ratio")
	b.ReportMetric(rebuildRate/rawRate, "rebuild_ratio")
	b.ReportMetric(storeCPU*1e6/total, "store_redis_us/event")
	b.ReportMetric(rebuildCPU*1e6/total, "rebuild_redis_us/event")
	b.ReportMetric(rawCPU*1e6/total, "raw_redis_us/event")
	b.ReportMetric(0, "ns/op")
}

// applySegment applies each partition's records of seg to store in
// batches of 10,000.
func applySegment(ctx context.Context, b *testing.B, store projections.Store, seg map[int32][]events.Record) {
	for part, recs := range seg {
		for from := 0; from < len(recs); from += 10_000 {
			batch := recs[from:min(from+10_000, len(recs))]
			if err := store.Apply(ctx, part, batch, batch[len(batch)-1].Offset+1); err != nil {
				b.Fatal(err)
			}
		}
	}
}

// rawReplay sends the projection's writes for evs as plain commands,
// pipelined 1000 events at a time.
func rawReplay(ctx context.Context, b testing.TB, rdb *goredis.Client, v string, evs []events.Event) {
	pipe := rdb.Pipeline()
	for i, ev := range evs {
		e := ev.Env()
		r := v + "r:" + e.Room + ":"
		switch ev := ev.(type) {
		case *events.MessageSent:
			pipe.HSetNX(ctx, r+"msgs", ev.MessageID, e.User)
			pipe.HIncrBy(ctx, r+"meta", "total", 1)
			pipe.ZIncrBy(ctx, v+"lb:sent", -1, e.User)
			pipe.ZIncrBy(ctx, r+"lb", -1, e.User)
			pipe.HIncrBy(ctx, r+"pm", strconv.FormatInt(e.Time-e.Time%60_000, 10), 1)
		case *events.ReactionAdded:
			pipe.SAdd(ctx, r+"rx", ev.MessageID+e.User+ev.Emoji)
			pipe.ZIncrBy(ctx, v+"lb:rx", -1, e.User)
		case *events.ReactionRemoved:
			pipe.SRem(ctx, r+"rx", ev.MessageID+e.User+ev.Emoji)
			pipe.ZIncrBy(ctx, v+"lb:rx", 1, e.User)
		case *events.MemberJoined:
			pipe.SAdd(ctx, r+"members", e.User)
		case *events.MemberLeft:
			pipe.SRem(ctx, r+"members", e.User)
		}
		if i%1000 == 999 || i == len(evs)-1 {
			if _, err := pipe.Exec(ctx); err != nil {
				b.Fatal(err)
			}
		}
	}
}

func dropPrefix(ctx context.Context, b *testing.B, rdb *goredis.Client, prefix string) {
	iter := rdb.Scan(ctx, 0, prefix+"*", 1000).Iterator()
	var keys []string
	for iter.Next(ctx) {
		keys = append(keys, iter.Val())
	}
	if len(keys) > 0 {
		if err := rdb.Unlink(ctx, keys...).Err(); err != nil {
			b.Fatal(err)
		}
	}
}

// redisCPU is the CPU time Redis has used (user + system), in seconds.
func redisCPU(b *testing.B, rdb *goredis.Client) float64 {
	info, err := rdb.Info(context.Background(), "cpu").Result()
	if err != nil {
		b.Fatal(err)
	}
	var sum float64
	for _, line := range strings.Split(info, "\n") {
		k, v, _ := strings.Cut(strings.TrimSpace(line), ":")
		if k == "used_cpu_user" || k == "used_cpu_sys" {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				b.Fatalf("INFO cpu %s: %v", line, err)
			}
			sum += f
		}
	}
	return sum
}
