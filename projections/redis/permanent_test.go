package redis_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/rtstack/rtstack/events"
	"github.com/rtstack/rtstack/infra/kafka"
	"github.com/rtstack/rtstack/infra/kafka/kafkatest"
	"github.com/rtstack/rtstack/internal/testsvc"
	"github.com/rtstack/rtstack/projections"
)

// A key of the wrong type under the projection's prefix makes every
// retry fail the same way (WRONGTYPE): the projector stops with
// ErrPermanent and Redis's reason instead of retrying forever.
func TestWrongTypeStopsTheProjector(t *testing.T) {
	testsvc.Integration(t)
	b := kafkatest.Broker(t, "")
	kafkatest.Topic(t, b.Addr(), topic, 1)
	p, rdb, prefix := open(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	v, err := rdb.Get(ctx, prefix+"active").Result()
	if err != nil {
		t.Fatal(err)
	}
	if err := rdb.Set(ctx, prefix+v+":r:broken:members", "not a set", 0).Err(); err != nil {
		t.Fatal(err)
	}
	log := kafka.NewLog(kafkatest.Client(t, b.Addr()), kafkatest.Codec(t), topic)
	for _, ev := range []events.Event{join("fine", "alice", base), join("broken", "bob", base+1)} {
		if _, err := log.Append(ctx, ev); err != nil {
			t.Fatal(err)
		}
	}
	cfg := projectorConfig(t, b.Addr(), p, "wrongtype")
	cfg.MaxBatch = 1
	pr, err := projections.NewProjector(cfg)
	if err != nil {
		t.Fatal(err)
	}
	err = pr.Run(ctx)
	if !errors.Is(err, projections.ErrPermanent) || ctx.Err() != nil {
		t.Fatalf("Run = %v, want ErrPermanent", err)
	}
	if !strings.Contains(err.Error(), "WRONGTYPE") {
		t.Errorf("Run error %q does not carry Redis's reason", err)
	}
	if cps, _ := p.Checkpoints(ctx); cps[0] != 1 {
		t.Errorf("checkpoint %d, want 1 (the good join applied, the refused one not)", cps[0])
	}
}
