package commands_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/rtstack/rtstack/commands"
	"github.com/rtstack/rtstack/events"
)

// heldLog is an AsyncLog whose appends complete only when release is
// called, in the order they were issued.
type heldLog struct {
	memLog
	held []func()
}

func (l *heldLog) AppendAsync(ctx context.Context, ev events.Event, done func(events.Position, error)) {
	l.held = append(l.held, func() { done(l.Append(ctx, ev)) })
}

func (l *heldLog) release() {
	for _, f := range l.held {
		f()
	}
	l.held = nil
}

// Submit returns before the append's outcome, in issue order; the dedupe
// store learns a send's position only once its outcome was taken, and a
// resend or an invalid action is answered at once without an append.
func TestSubmitIssuesWithoutWaiting(t *testing.T) {
	log := &heldLog{}
	outcomes := memOutcomes{}
	h, err := commands.NewHandler(commands.Config{Log: log, Outcomes: outcomes})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	var ready [3]chan events.Position // each gets the stored position when ready is called
	var pending [3]*commands.Pending
	for i, id := range []string{"a", "b", "c"} {
		ready[i] = make(chan events.Position, 1)
		key := "r\x00u\x00" + id // the dedupe key of (room, user, client id)
		pending[i] = h.Submit(ctx, commands.SendMessage{Room: "r", User: "u", ClientID: id, Text: "hi " + id}, func() {
			pos, _, _ := outcomes.Get(ctx, key)
			ready[i] <- pos
		})
	}
	for i := range ready {
		if len(ready[i]) != 0 || len(log.held) != 3 {
			t.Fatalf("%d ready with %d appends held: Submit waited for an outcome", i, len(log.held))
		}
	}
	log.release()
	for i, id := range []string{"a", "b", "c"} {
		select {
		case pos := <-ready[i]:
			if pos.Offset != int64(i) {
				t.Fatalf("%s ready with %+v in the dedupe store, want offset %d: ready before the outcome was stored", id, pos, i)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("%s not ready after its append completed", id)
		}
		res, err := pending[i].Result()
		if err != nil || res.Position.Offset != int64(i) || res.MessageID != commands.MessageID("r", "u", id) {
			t.Fatalf("%s: %+v %v, want offset %d (issue order)", id, res, err, i)
		}
	}
	if len(outcomes) != 3 {
		t.Fatalf("dedupe store has %d positions, want 3", len(outcomes))
	}

	var dupReady bool
	dup := h.Submit(ctx, commands.SendMessage{Room: "r", User: "u", ClientID: "b", Text: "hi b"}, func() { dupReady = true })
	if res, err := dup.Result(); !dupReady || err != nil || !res.Duplicate || res.Position.Offset != 1 {
		t.Fatalf("resend: ready %v, %+v %v; want the first append's position at once", dupReady, res, err)
	}
	var badReady bool
	bad := h.Submit(ctx, commands.SendMessage{Room: "r", User: "u", ClientID: "d"}, func() { badReady = true })
	if _, err := bad.Result(); !badReady || err == nil || errors.Is(err, commands.ErrAppend) {
		t.Fatalf("empty text: ready %v, err %v; want a validation error at once", badReady, err)
	}
	if len(log.held) != 0 {
		t.Fatalf("%d appends issued for a resend and an invalid send", len(log.held))
	}

	log.fail = errors.New("broker away")
	failed := h.Submit(ctx, commands.React{Room: "r", User: "u", MessageID: "m1", Emoji: "👍"}, func() {})
	log.release()
	if _, err := failed.Result(); !errors.Is(err, commands.ErrAppend) {
		t.Fatalf("failed append: %v, want ErrAppend", err)
	}
}
