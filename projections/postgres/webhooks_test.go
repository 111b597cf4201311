package postgres_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/rtstack/rtstack/events"
)

func registered(n int, room, id string) *events.WebhookRegistered {
	return &events.WebhookRegistered{Envelope: env(fmtID(n), room, "admin", int64(n)), WebhookID: id, URL: "https://example.com/" + id, Secret: "rtsk1:k:x"}
}

func removed(n int, room, id string) *events.WebhookRemoved {
	return &events.WebhookRemoved{Envelope: env(fmtID(n), room, "admin", int64(n)), WebhookID: id}
}

func fmtID(n int) string { return "ev" + string(rune('a'+n)) }

// A WebhookRemoved deletes the row, whether it lands in the registration's
// batch or a later one; registering again after a removal re-creates it in
// either case.
func TestWebhookRemovalFolds(t *testing.T) {
	evs := []events.Event{
		registered(0, "r", "w1"), registered(1, "r", "w2"), removed(2, "r", "w1"),
		registered(3, "r", "w3"), removed(4, "r", "w3"), registered(5, "r", "w3"),
		removed(6, "r", "wNONE"), removed(7, "other", "w2"), // unknown / other room: no-ops
	}
	want := []string{"w2", "w3"}
	for _, batch := range []int{len(evs), 1, 2} {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		p, _ := open(t)
		recs := records(evs...)
		for i := 0; i < len(recs); i += batch {
			j := min(i+batch, len(recs))
			if err := p.Apply(ctx, 0, recs[i:j], int64(j)); err != nil {
				t.Fatal(err)
			}
		}
		ids, err := p.WebhookIDs(ctx, "r")
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		slices.Sort(ids)
		if !slices.Equal(ids, want) {
			t.Errorf("batches of %d: webhooks %v, want %v", batch, ids, want)
		}
	}
}
