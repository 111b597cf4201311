package postgres_test

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/rtstack/rtstack/events"
	"github.com/rtstack/rtstack/infra/kafka/kafkatest"
	"github.com/rtstack/rtstack/internal/testsvc"
	"github.com/rtstack/rtstack/projections/postgres"
	"github.com/rtstack/rtstack/projections/projectionstest"
	"github.com/rtstack/rtstack/schemas"
)

// open returns a projection on a fresh database.
func open(t testing.TB) (*postgres.Projection, string) {
	t.Helper()
	url := testsvc.Postgres(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p, err := postgres.Open(ctx, postgres.Config{URL: url})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p, url
}

func env(id, room, user string, ts int64) events.Envelope {
	return events.Envelope{ID: id, Room: room, User: user, Time: ts}
}

func newGen(seed uint64, rooms int) *projectionstest.Traffic {
	return projectionstest.NewTraffic(seed, rooms)
}

// produce appends evs with async produce and waits for every ack.
func produce(t testing.TB, cl *kgo.Client, codec *schemas.Codec, topic string, evs []events.Event) []events.Position {
	t.Helper()
	return (&kafkatest.Log{Topic: topic, Client: cl, Codec: codec}).Produce(t, evs)
}

// caughtUp reports whether the store's checkpoints reached ends.
func caughtUp(ctx context.Context, p interface {
	Checkpoints(context.Context) (map[int32]int64, error)
}, ends map[int32]int64) bool {
	cps, err := p.Checkpoints(ctx)
	if err != nil {
		return false
	}
	for part, end := range ends {
		if cps[part] < end {
			return false
		}
	}
	return true
}
