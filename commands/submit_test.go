package commands_test

import (
	"context"
	"errors"
	"testing"

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
	var ready [3]bool
	var pending [3]*commands.Pending
	for i, id := range []string{"a", "b", "c"} {
		pending[i] = h.Submit(ctx, commands.SendMessage{Room: "r", User: "u", ClientID: id, Text: "hi " + id}, func() { ready[i] = true })
	}
	if ready != [3]bool{} || len(log.held) != 3 {
		t.Fatalf("ready %v with %d appends held: Submit waited for an outcome", ready, len(log.held))
	}
	log.release()
	for i, id := range []string{"a", "b", "c"} {
		if !ready[i] {
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
