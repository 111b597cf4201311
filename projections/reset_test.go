package projections_test

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/rtstack/rtstack/events"
	"github.com/rtstack/rtstack/infra/kafka"
	"github.com/rtstack/rtstack/infra/kafka/kafkatest"
	"github.com/rtstack/rtstack/internal/testsvc"
	"github.com/rtstack/rtstack/projections"
	"github.com/rtstack/rtstack/projections/projectionstest"
)

// resettingStore loses part of one partition's state once, on the first
// Apply of that partition reaching offset trigger: it keeps only the first
// keep records (the checkpoint goes back there), calls onLoss, and answers
// ErrStoreReset, as a Redis without persistence does after a restart.
type resettingStore struct {
	*memStore
	part    int32
	trigger int64
	onLoss  func()

	mu         sync.Mutex // guards the fields below
	lost       bool
	keep       int64 // records kept by the loss; then the checkpoint it left
	firstAfter int64 // offset of the first record applied after the loss (-1 before it)
}

func (s *resettingStore) Apply(ctx context.Context, p int32, recs []events.Record, next int64) error {
	s.mu.Lock()
	if p == s.part && len(recs) > 0 {
		if !s.lost && recs[len(recs)-1].Offset >= s.trigger {
			s.keep = s.truncate(p, s.keep)
			s.lost = true
			s.mu.Unlock()
			s.onLoss()
			return fmt.Errorf("mem: state lost: %w", projections.ErrStoreReset)
		}
		if s.lost && s.firstAfter < 0 {
			s.firstAfter = recs[0].Offset
		}
	}
	s.mu.Unlock()
	return s.memStore.Apply(ctx, p, recs, next)
}

// truncate keeps the first keep records of partition p (fewer if it has
// fewer) and returns where its checkpoint now is.
func (s *memStore) truncate(p int32, keep int64) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	v := s.versions[s.active]
	keep = min(keep, v.cps[p], int64(len(v.ids[p])))
	v.ids[p] = v.ids[p][:keep]
	v.cps[p] = keep
	return keep
}

func TestStoreResetReseeksFromCheckpoint(t *testing.T) {
	testsvc.Integration(t)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	b := kafkatest.Broker(t, "")
	const topic = "chat.events"
	kafkatest.Topic(t, b.Addr(), topic, 2)
	codec := kafkatest.Codec(t)
	cl := kafkatest.Client(t, b.Addr())
	log := kafka.NewLog(cl, codec, topic)
	for i := range 300 {
		if _, err := log.Append(ctx, joined(i)); err != nil {
			t.Fatal(err)
		}
	}
	ends, err := kafka.EndOffsets(ctx, cl, topic)
	if err != nil {
		t.Fatal(err)
	}
	part := int32(0)
	if ends[1] > ends[0] {
		part = 1
	}
	if ends[part] < 100 {
		t.Fatalf("partition %d has only %d records", part, ends[part])
	}

	appendRange := func(from, to int) {
		for i := from; i < to; i++ {
			if _, err := log.Append(ctx, joined(i)); err != nil {
				t.Error(err)
				return
			}
		}
	}
	// The loss hits the first live record of the partition. More records
	// are appended meanwhile and the failing Apply lasts longer than a
	// fetch wait, so the runtime has records fetched from before the seek
	// in hand: it must drop them, not apply them past a gap.
	store := &resettingStore{
		memStore: newMemStore(), part: part, trigger: ends[part], keep: 17, firstAfter: -1,
		onLoss: func() {
			appendRange(320, 350)
			time.Sleep(time.Second)
		},
	}
	reg := prometheus.NewRegistry()
	projectionstest.Run(t, projections.Config{
		Kafka: kafka.ClientConfig{Brokers: []string{b.Addr()}}, Topic: topic, Codec: codec, Store: store,
		Registerer: reg, MaxBatch: 10,
		Logger: slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	count := func() int {
		n := 0
		for _, ids := range store.ids() {
			n += len(ids)
		}
		return n
	}
	testsvc.Eventually(t, 30*time.Second, "300 events applied", func() bool { return count() == 300 })
	appendRange(300, 320)
	testsvc.Eventually(t, 30*time.Second, "350 events applied", func() bool { return count() == 350 })

	store.mu.Lock()
	keep, firstAfter, lost := store.keep, store.firstAfter, store.lost
	store.mu.Unlock()
	if !lost {
		t.Fatalf("the loss never happened on partition %d", part)
	}
	if firstAfter != keep {
		t.Errorf("after the reset partition %d restarted at offset %d, want the store's checkpoint %d", part, firstAfter, keep)
	}
	if got := counterSum(t, reg, "rtstack_projection_store_resets_total"); got != 1 {
		t.Errorf("resets metric = %v, want 1", got)
	}
	if got := counterSum(t, reg, "rtstack_projection_apply_errors_total"); got != 0 {
		t.Errorf("apply errors metric = %v, want 0 (a reset is not retried)", got)
	}
	for p, ids := range store.ids() {
		seen := map[string]bool{}
		for _, id := range ids {
			if seen[id] {
				t.Errorf("partition %d: %s applied twice", p, id)
			}
			seen[id] = true
		}
	}
	// The state equals a clean replay of the log, in log order.
	before, _ := store.Digest(ctx)
	if err := projections.Rebuild(ctx, projections.RebuildConfig{
		Kafka: kafka.ClientConfig{Brokers: []string{b.Addr()}}, Topic: topic, Codec: codec, Target: store.memStore,
	}); err != nil {
		t.Fatal(err)
	}
	if after, _ := store.Digest(ctx); after != before {
		t.Errorf("state after the reset %s differs from a clean rebuild %s", before, after)
	}
}
