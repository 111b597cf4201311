package postgres_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/rtstack/rtstack/infra/kafka"
	"github.com/rtstack/rtstack/projections"
)

// A value Postgres refuses (here a CHECK constraint the test adds: SQLSTATE
// 23514) fails on every retry: the projector stops with ErrPermanent and
// the reason instead of retrying forever, with the messages before it
// applied.
func TestRefusedValueStopsTheProjector(t *testing.T) {
	e := logBroker(t, 1)
	p, _ := open(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	log := kafka.NewLog(e.cl, e.codec, topic)
	for i, text := range []string{"fine", "also fine", "refused"} {
		if _, err := log.Append(ctx, sent(i, "r", "alice", string(rune('a'+i)), text)); err != nil {
			t.Fatal(err)
		}
	}
	v, err := p.Active(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Pool().Exec(ctx, "ALTER TABLE "+v+".messages ADD CONSTRAINT refuse CHECK (text <> 'refused')"); err != nil {
		t.Fatal(err)
	}
	pr, err := projections.NewProjector(projections.Config{Kafka: kafka.ClientConfig{Brokers: []string{e.addr}}, Topic: topic, Codec: e.codec, Store: p, MaxBatch: 1, Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	err = pr.Run(ctx)
	if !errors.Is(err, projections.ErrPermanent) || ctx.Err() != nil {
		t.Fatalf("Run = %v, want ErrPermanent", err)
	}
	if !strings.Contains(err.Error(), "SQLSTATE 23514") {
		t.Errorf("Run error %q does not carry the reason", err)
	}
	if cps, _ := p.Checkpoints(ctx); cps[0] != 2 {
		t.Errorf("checkpoint %d, want 2 (the two good messages applied)", cps[0])
	}
	if n := messageCount(t, p); n != 2 {
		t.Errorf("%d messages, want 2", n)
	}
}
