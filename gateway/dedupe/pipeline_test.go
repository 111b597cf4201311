package dedupe

import (
	"context"
	"crypto/rand"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/rtstack/rtstack/events"
	"github.com/rtstack/rtstack/internal/testsvc"
)

func (p *pipeline) queued() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.queue)
}

// Callers arriving while maxInFlight round trips are under way go
// together in the next one: 4 + 20 Puts take five round trips, not 24.
func TestConcurrentCallsShareARoundTrip(t *testing.T) {
	rdb, prefix := testsvc.Redis(t)
	ctx := context.Background()
	o := New(rdb, prefix, time.Hour)
	if err := o.Put(ctx, "warm", events.Position{}); err != nil { // scripts loaded, connection open
		t.Fatal(err)
	}
	rt := &RoundTrips{Gate: make(chan struct{})}
	rdb.AddHook(rt)
	var wg sync.WaitGroup
	opened := sync.OnceFunc(func() { close(rt.Gate) })
	t.Cleanup(func() { opened(); wg.Wait() }) // a failure must not leave Puts held
	errs := make(chan error, maxInFlight+20)
	put := func(i int) {
		errs <- o.Put(ctx, "k"+string(rune('a'+i)), events.Position{Partition: 0, Offset: int64(i)})
	}
	for i := range maxInFlight {
		wg.Go(func() { put(i) })
	}
	testsvc.Eventually(t, 5*time.Second, "maxInFlight round trips under way", func() bool { return rt.Len() == maxInFlight })
	for i := maxInFlight; i < maxInFlight+20; i++ {
		wg.Go(func() { put(i) })
	}
	testsvc.Eventually(t, 5*time.Second, "20 Puts queued", func() bool { return o.pipe.queued() == 20 })
	opened()
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if got, want := rt.Sizes(), append(slices.Repeat([]int{1}, maxInFlight), 20); !slices.Equal(got, want) {
		t.Fatalf("commands per round trip %v, want %v", got, want)
	}
	for i := range maxInFlight + 20 {
		if pos, ok, err := o.Get(ctx, "k"+string(rune('a'+i))); err != nil || !ok || pos.Offset != int64(i) {
			t.Fatalf("Put %d stored %v, %v, %v", i, pos, ok, err)
		}
	}
}

// A script Redis does not have cached (never loaded, or flushed by a
// restart) is sent by body in a second round trip.
func TestUncachedScriptIsSentByBody(t *testing.T) {
	rdb, _ := testsvc.Redis(t)
	fresh := redis.NewScript("return ARGV[1] -- " + rand.Text()) // a hash Redis has never seen
	v, err := (&pipeline{rdb: rdb}).run(context.Background(), fresh, nil, "ok")
	if err != nil || v != "ok" {
		t.Fatalf("run = %v, %v; want ok", v, err)
	}
}
