package redis_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/rtstack/rtstack/events"
	"github.com/rtstack/rtstack/infra/kafka"
	"github.com/rtstack/rtstack/infra/kafka/kafkatest"
	"github.com/rtstack/rtstack/internal/testsvc"
	"github.com/rtstack/rtstack/projections"
	"github.com/rtstack/rtstack/projections/projectionstest"
	"github.com/rtstack/rtstack/projections/redis"
)

const topic = "chat.events"

// produceLog appends evs to a new topic of a new embedded broker and returns
// the broker's address.
func produceLog(t testing.TB, evs []events.Event) string {
	t.Helper()
	testsvc.Integration(t)
	l := kafkatest.NewLog(t, topic, 6)
	l.Produce(t, evs)
	return l.Addr
}

func endOffsets(t *testing.T, addr string) map[int32]int64 {
	t.Helper()
	ends, err := kafka.EndOffsets(context.Background(), kafkatest.Client(t, addr), topic)
	if err != nil {
		t.Fatal(err)
	}
	return ends
}

func caughtUp(cps, ends map[int32]int64) bool {
	for p, e := range ends {
		if cps[p] < e {
			return false
		}
	}
	return true
}

func projectorConfig(t testing.TB, addr string, store projections.Store, group string) projections.Config {
	return projections.Config{
		Kafka: kafka.ClientConfig{Brokers: []string{addr}}, Topic: topic, Group: group, Store: store, Codec: kafkatest.Codec(t),
		SessionTimeout: 6 * time.Second,
	}
}

const helperEnv = "RTSTACK_REDISPROJ_HELPER"

// TestHelperProjector is the child process of
// TestProjectorSurvivesKill9DuringLiveTraffic:
// a projector of the Redis projection that runs until it is killed.
func TestHelperProjector(t *testing.T) {
	spec := os.Getenv(helperEnv)
	if spec == "" {
		t.Skip("helper process only")
	}
	f := strings.Split(spec, "|") // broker, prefix, group
	rdb := goredis.NewClient(&goredis.Options{Addr: testsvc.RedisAddr})
	p, err := redis.Open(context.Background(), redis.Config{Redis: rdb, Prefix: f[1], ChunkSize: 300})
	if err != nil {
		t.Fatal(err)
	}
	cfg := projectorConfig(t, f[0], p, f[2])
	cfg.MaxBatch = 2000
	pr, err := projections.NewProjector(cfg)
	if err != nil {
		t.Fatal(err)
	}
	_ = pr.Run(context.Background()) // until kill -9
}

// startHelperProjector starts TestHelperProjector as a child process in
// consumer group group. A fresh group per run: the store's checkpoints, not
// the group, say where to start, and no run waits for a killed member to
// expire.
func startHelperProjector(t *testing.T, addr, prefix, group string) *exec.Cmd {
	t.Helper()
	return projectionstest.StartProcess(t, "TestHelperProjector", fmt.Sprintf("%s=%s|%s|%s", helperEnv, addr, prefix, group))
}

// TestProjectorSurvivesKill9DuringLiveTraffic kills the projector while it
// applies a live stream in small batches, restarts it, and repeats: the
// state matches the model and a clean rebuild.
func TestProjectorSurvivesKill9DuringLiveTraffic(t *testing.T) {
	const rooms, rounds, chunks, chunkSize = 12, 5, 30, 20
	evs := genLog(21, rounds*chunks*chunkSize+chunkSize, rooms, 40)
	addr := produceLog(t, evs[:chunkSize]) // so the first catch-up waits for a running projector
	rdb, prefix := testsvc.Redis(t)
	p := openWith(t, rdb, prefix)
	ctx := context.Background()
	lg := kafka.NewLog(kafkatest.Client(t, addr), kafkatest.Codec(t), topic)
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 3))
	next := chunkSize
	for run := range rounds {
		cmd := startHelperProjector(t, addr, prefix, fmt.Sprint("live", run))
		ends := endOffsets(t, addr)
		testsvc.Eventually(t, time.Minute, "catch-up before the live stream", func() bool {
			cps, _ := p.Checkpoints(ctx)
			return caughtUp(cps, ends)
		})
		killAt := 3 + rng.IntN(chunks-3)
		for i := range chunks {
			for _, ev := range evs[next : next+chunkSize] {
				if _, err := lg.Append(ctx, ev); err != nil {
					t.Fatal(err)
				}
			}
			next += chunkSize
			if i == killAt {
				time.Sleep(time.Duration(rng.IntN(10)) * time.Millisecond)
				if err := cmd.Process.Kill(); err != nil { // SIGKILL
					t.Fatal(err)
				}
				_ = cmd.Wait()
			}
		}
	}
	cmd := startHelperProjector(t, addr, prefix, "live-final")
	ends := endOffsets(t, addr)
	testsvc.Eventually(t, time.Minute, "final catch-up", func() bool {
		cps, _ := p.Checkpoints(ctx)
		return caughtUp(cps, ends)
	})
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	checkModel(t, p, evs, rooms)
	live := digest(t, p)
	if err := projections.Rebuild(ctx, projections.RebuildConfig{
		Kafka: kafka.ClientConfig{Brokers: []string{addr}}, Topic: topic, Codec: kafkatest.Codec(t), Target: p,
	}); err != nil {
		t.Fatal(err)
	}
	if got := digest(t, p); got != live {
		t.Errorf("digest after kills during live traffic %s, clean rebuild %s", live, got)
	}
}

func TestProjectorWaitsForRedis(t *testing.T) {
	const rooms = 10
	evs := genLog(5, 6_000, rooms, 50)
	first, second := evs[:3_000], evs[3_000:]
	addr := produceLog(t, first)
	rdb, prefix := testsvc.Redis(t)
	direct := openWith(t, rdb, prefix)
	px := testsvc.Proxy(t, testsvc.RedisAddr)
	viaProxy := goredis.NewClient(&goredis.Options{Addr: px.Addr(), DialTimeout: time.Second, ReadTimeout: 2 * time.Second, WriteTimeout: 2 * time.Second})
	t.Cleanup(func() { _ = viaProxy.Close() })
	p := openWith(t, viaProxy, prefix)
	projectionstest.Run(t, projectorConfig(t, addr, p, "waits"))
	ctx := context.Background()
	ends := endOffsets(t, addr)
	testsvc.Eventually(t, time.Minute, "first half applied", func() bool {
		cps, _ := direct.Checkpoints(ctx)
		return caughtUp(cps, ends)
	})

	// Redis goes away; the second half of the log arrives meanwhile.
	px.Cut()
	cl := kafkatest.Client(t, addr)
	lg := kafka.NewLog(cl, kafkatest.Codec(t), topic)
	for _, ev := range second {
		if _, err := lg.Append(ctx, ev); err != nil {
			t.Fatal(err)
		}
	}
	testsvc.Eventually(t, time.Minute, "the projector to retry against the cut proxy", func() bool { return px.Refused() >= 3 })
	cps, err := direct.Checkpoints(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(cps, ends) {
		t.Fatalf("checkpoints moved while Redis was cut: %v, was %v", cps, ends)
	}

	px.Restore()
	ends = endOffsets(t, addr)
	testsvc.Eventually(t, time.Minute, "the rest applied after Redis came back", func() bool {
		cps, _ := direct.Checkpoints(ctx)
		return caughtUp(cps, ends)
	})
	checkModel(t, direct, evs, rooms)
}

func TestRebuildKeepsReadsAnswering(t *testing.T) {
	const rooms = 8
	evs := genLog(3, 20_000, rooms, 60)
	addr := produceLog(t, evs)
	ends := endOffsets(t, addr)
	p, _, _ := open(t)
	projectionstest.Run(t, projectorConfig(t, addr, p, "live"))
	ctx := context.Background()
	testsvc.Eventually(t, time.Minute, "live projection caught up", func() bool {
		cps, _ := p.Checkpoints(ctx)
		return caughtUp(cps, ends)
	})
	want := digest(t, p)
	old, _ := p.ActiveVersion(ctx)
	wantBoard := board(t, p.Leaderboard)
	wantCounters := counters(t, p, "room-1")

	stop := make(chan struct{})
	var wg sync.WaitGroup
	var reads, wrong atomic.Int64
	var firstErr atomic.Value
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			b, err := p.Leaderboard(ctx, 0)
			c, err2 := p.Counters(ctx, "room-1")
			reads.Add(1)
			if err := errors.Join(err, err2); err != nil {
				firstErr.CompareAndSwap(nil, err)
				wrong.Add(1)
			} else if !reflect.DeepEqual(b, wantBoard) || !reflect.DeepEqual(c, wantCounters) {
				wrong.Add(1)
			}
		}
	}()
	err := projections.Rebuild(ctx, projections.RebuildConfig{
		Kafka: kafka.ClientConfig{Brokers: []string{addr}}, Topic: topic, Codec: kafkatest.Codec(t), Target: p,
	})
	close(stop)
	wg.Wait()
	if err != nil {
		t.Fatal(err)
	}
	if wrong.Load() != 0 || reads.Load() == 0 {
		t.Errorf("%d of %d reads during the rebuild were wrong (first error %v)", wrong.Load(), reads.Load(), firstErr.Load())
	}
	if now, _ := p.ActiveVersion(ctx); now == old {
		t.Errorf("active version still %s after the rebuild", now)
	}
	if got := digest(t, p); got != want {
		t.Errorf("digest after rebuild %s, before %s", got, want)
	}
}

// A rebuild while the live projector keeps applying new events: Promote
// waits until the new version has caught up, and nothing is lost or doubled
// across the swap.
func TestRebuildWhileLiveAppends(t *testing.T) {
	const rooms = 8
	evs := genLog(9, 12_000, rooms, 60)
	before, during := evs[:8_000], evs[8_000:]
	addr := produceLog(t, before)
	p, _, _ := open(t)
	projectionstest.Run(t, projectorConfig(t, addr, p, "live"))
	ctx := context.Background()
	ends := endOffsets(t, addr)
	testsvc.Eventually(t, time.Minute, "live projection caught up", func() bool {
		cps, _ := p.Checkpoints(ctx)
		return caughtUp(cps, ends)
	})
	old, _ := p.ActiveVersion(ctx)

	lg := kafka.NewLog(kafkatest.Client(t, addr), kafkatest.Codec(t), topic)
	appendErr := make(chan error, 1)
	started := make(chan struct{})
	var once sync.Once
	go func() {
		<-started // append while the rebuild replays
		for _, ev := range during {
			if _, err := lg.Append(ctx, ev); err != nil {
				appendErr <- err
				return
			}
		}
		appendErr <- nil
	}()
	err := projections.Rebuild(ctx, projections.RebuildConfig{
		Kafka: kafka.ClientConfig{Brokers: []string{addr}}, Topic: topic, Codec: kafkatest.Codec(t), Target: p,
		Progress: func(done, total int64) { once.Do(func() { close(started) }) },
	})
	once.Do(func() { close(started) })
	if err != nil {
		t.Fatal(err)
	}
	if err := <-appendErr; err != nil {
		t.Fatal(err)
	}
	if now, _ := p.ActiveVersion(ctx); now == old {
		t.Fatalf("active version still %s after the rebuild", now)
	}
	ends = endOffsets(t, addr)
	testsvc.Eventually(t, time.Minute, "live projection caught up after the swap", func() bool {
		cps, _ := p.Checkpoints(ctx)
		return caughtUp(cps, ends)
	})
	checkModel(t, p, evs, rooms)
}
