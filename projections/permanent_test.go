package projections_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rtstack/rtstack/events"
	"github.com/rtstack/rtstack/infra/kafka"
	"github.com/rtstack/rtstack/infra/kafka/kafkatest"
	"github.com/rtstack/rtstack/internal/testsvc"
	"github.com/rtstack/rtstack/projections"
	"github.com/rtstack/rtstack/projections/projectionstest"
)

var errRefused = errors.New("the store refuses this record")

// refusingStore refuses, for good, every batch holding the record of
// partition 0 at offset bad; with retryable set it calls the refusal
// retryable instead and accepts the batch after refusals failures.
type refusingStore struct {
	*memStore
	bad       int64
	retryable bool
	refusals  int32
	refused   atomic.Int32
}

func (s *refusingStore) Apply(ctx context.Context, p int32, recs []events.Record, next int64) error {
	for _, r := range recs {
		if p == 0 && r.Offset == s.bad && (!s.retryable || s.refused.Load() < s.refusals) {
			s.refused.Add(1)
			return fmt.Errorf("apply: %w", errRefused)
		}
	}
	return s.memStore.Apply(ctx, p, recs, next)
}

func (s *refusingStore) Retryable(err error) bool { return s.retryable || !errors.Is(err, errRefused) }

func (s *refusingStore) Begin(ctx context.Context) (projections.Store, string, error) {
	st, v, err := s.memStore.Begin(ctx)
	return &refusingVersion{Store: st, of: s}, v, err
}

// refusingVersion is a version of a refusingStore: it refuses the same
// record, so a rebuild meets the same permanent error.
type refusingVersion struct {
	projections.Store
	of *refusingStore
}

func (v *refusingVersion) Apply(ctx context.Context, p int32, recs []events.Record, next int64) error {
	for _, r := range recs {
		if p == 0 && r.Offset == v.of.bad {
			return fmt.Errorf("apply: %w", errRefused)
		}
	}
	return v.Store.Apply(ctx, p, recs, next)
}

func (v *refusingVersion) Retryable(err error) bool { return !errors.Is(err, errRefused) }

// An Apply error the store calls permanent stops the projector with an
// error naming the partition and offset, leaves the checkpoint before the
// refused record, and fails a rebuild the same way; an error the store
// calls retryable is still retried until it passes.
func TestPermanentApplyErrorStopsInsteadOfRetrying(t *testing.T) {
	testsvc.Integration(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	b := kafkatest.Broker(t, "")
	const topic = "chat.events"
	kafkatest.Topic(t, b.Addr(), topic, 1)
	codec := kafkatest.Codec(t)
	log := kafka.NewLog(kafkatest.Client(t, b.Addr()), codec, topic)
	for i := range 10 {
		if _, err := log.Append(ctx, joined(i)); err != nil {
			t.Fatal(err)
		}
	}
	const bad = 6

	t.Run("permanent stops", func(t *testing.T) {
		store := &refusingStore{memStore: newMemStore(), bad: bad}
		pr, err := projections.NewProjector(projections.Config{Kafka: kafka.ClientConfig{Brokers: []string{b.Addr()}}, Topic: topic, Codec: codec, Store: store, MaxBatch: 1})
		if err != nil {
			t.Fatal(err)
		}
		err = pr.Run(ctx)
		if !errors.Is(err, projections.ErrPermanent) || !errors.Is(err, errRefused) || ctx.Err() != nil {
			t.Fatalf("Run = %v, want an error wrapping ErrPermanent and the store's error", err)
		}
		if !strings.Contains(err.Error(), "partition 0 at offset 6") {
			t.Errorf("Run error %q does not name the partition and offset", err)
		}
		if n := store.refused.Load(); n != 1 {
			t.Errorf("the permanent error was met %d times, want once (no retry)", n)
		}
		if cps, _ := store.Checkpoints(ctx); cps[0] != bad {
			t.Errorf("checkpoint %d, want %d: everything before the refused record applied, nothing after", cps[0], bad)
		}
		err = projections.Rebuild(ctx, projections.RebuildConfig{Kafka: kafka.ClientConfig{Brokers: []string{b.Addr()}}, Topic: topic, Codec: codec, Target: store})
		if !errors.Is(err, projections.ErrPermanent) {
			t.Fatalf("Rebuild = %v, want ErrPermanent", err)
		}
	})

	t.Run("retryable retries", func(t *testing.T) {
		store := &refusingStore{memStore: newMemStore(), bad: bad, retryable: true, refusals: 2}
		projectionstest.Run(t, projections.Config{Kafka: kafka.ClientConfig{Brokers: []string{b.Addr()}}, Topic: topic, Codec: codec, Store: store})
		testsvc.Eventually(t, 30*time.Second, "applied past the retried record", func() bool {
			cps, _ := store.Checkpoints(ctx)
			return cps[0] == 10
		})
		if n := store.refused.Load(); n != 2 {
			t.Errorf("refused %d times, want 2 (then retried to success)", n)
		}
	})
}
