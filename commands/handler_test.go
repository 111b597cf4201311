package commands_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rtstack/rtstack/commands"
	"github.com/rtstack/rtstack/events"
)

// memLog is an in-memory Log for the pure decision logic.
type memLog struct {
	mu   sync.Mutex
	evs  []events.Event
	fail error
}

func (l *memLog) Append(_ context.Context, ev events.Event) (events.Position, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.fail != nil {
		return events.Position{}, l.fail
	}
	l.evs = append(l.evs, ev)
	return events.Position{Partition: 0, Offset: int64(len(l.evs) - 1)}, nil
}

type memOutcomes map[string]events.Position

// outcomesMu guards every memOutcomes: a submitted send remembers its
// outcome from its own goroutine.
var outcomesMu sync.Mutex

func (m memOutcomes) Get(_ context.Context, k string) (events.Position, bool, error) {
	outcomesMu.Lock()
	defer outcomesMu.Unlock()
	p, ok := m[k]
	return p, ok, nil
}

func (m memOutcomes) Put(_ context.Context, k string, p events.Position) error {
	outcomesMu.Lock()
	defer outcomesMu.Unlock()
	m[k] = p
	return nil
}

type authors map[string]string

func (a authors) Author(_ context.Context, _, id string) (string, bool, error) {
	u, ok := a[id]
	return u, ok, nil
}

func newHandler(t *testing.T, cfg commands.Config) (*commands.Handler, *memLog) {
	t.Helper()
	log := &memLog{}
	cfg.Log = log
	cfg.Now = func() time.Time { return time.UnixMilli(1_700_000_000_000) }
	h, err := commands.NewHandler(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return h, log
}

func TestSendMessageValidation(t *testing.T) {
	h, log := newHandler(t, commands.Config{})
	tests := []struct {
		name string
		cmd  commands.SendMessage
		want error
	}{
		{"ok", commands.SendMessage{Room: "room-1", User: "alice", Text: "hi"}, nil},
		{"empty room", commands.SendMessage{User: "alice", Text: "hi"}, commands.ErrBadRoom},
		{"long room", commands.SendMessage{Room: strings.Repeat("r", 65), User: "alice", Text: "hi"}, commands.ErrBadRoom},
		{"room with space", commands.SendMessage{Room: "a b", User: "alice", Text: "hi"}, commands.ErrBadRoom},
		{"no user", commands.SendMessage{Room: "r", Text: "hi"}, commands.ErrInvalid},
		{"empty text", commands.SendMessage{Room: "r", User: "u", Text: "  "}, commands.ErrInvalid},
		{"text at limit", commands.SendMessage{Room: "r", User: "u", Text: strings.Repeat("x", 4096)}, nil},
		{"text too long", commands.SendMessage{Room: "r", User: "u", Text: strings.Repeat("x", 4097)}, commands.ErrTextTooLong},
		{"invalid utf-8", commands.SendMessage{Room: "r", User: "u", Text: "a\xffb"}, commands.ErrBadUTF8},
		{"long client id", commands.SendMessage{Room: "r", User: "u", Text: "x", ClientID: strings.Repeat("c", 129)}, commands.ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := len(log.evs)
			_, err := h.SendMessage(context.Background(), tt.cmd)
			if tt.want == nil {
				if err != nil {
					t.Fatalf("unexpected error %v", err)
				}
				if len(log.evs) != before+1 {
					t.Fatal("valid command appended nothing")
				}
				return
			}
			if !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
			if len(log.evs) != before {
				t.Fatal("invalid command reached the log")
			}
		})
	}
}

func TestSendMessageIsIdempotent(t *testing.T) {
	h, log := newHandler(t, commands.Config{Outcomes: memOutcomes{}})
	ctx := context.Background()
	cmd := commands.SendMessage{Room: "r", User: "alice", ClientID: "c-1", Text: "hello @bob and @carol. @bob"}
	first, err := h.SendMessage(ctx, cmd)
	if err != nil {
		t.Fatal(err)
	}
	again, err := h.SendMessage(ctx, cmd)
	if err != nil {
		t.Fatal(err)
	}
	if !again.Duplicate || again.Position != first.Position || again.MessageID != first.MessageID {
		t.Fatalf("resend: got %+v, want duplicate of %+v", again, first)
	}
	if len(log.evs) != 1 {
		t.Fatalf("resend appended: %d events", len(log.evs))
	}
	ms := log.evs[0].(*events.MessageSent)
	if got := strings.Join(ms.Mentions, ","); got != "bob,carol" {
		t.Errorf("mentions = %q, want bob,carol", got)
	}
	if ms.Time != 1_700_000_000_000 || ms.MessageID != commands.MessageID("r", "alice", "c-1") {
		t.Errorf("event = %+v", ms)
	}
	// Another user's identical client id is another message.
	other, _ := h.SendMessage(ctx, commands.SendMessage{Room: "r", User: "bob", ClientID: "c-1", Text: "x"})
	if other.MessageID == first.MessageID {
		t.Error("message id must depend on the user")
	}
}

func TestAppendFailureIsNotAnAck(t *testing.T) {
	h, log := newHandler(t, commands.Config{})
	log.fail = errors.New("broker gone")
	_, err := h.SendMessage(context.Background(), commands.SendMessage{Room: "r", User: "u", Text: "x"})
	if !errors.Is(err, commands.ErrAppend) {
		t.Fatalf("got %v, want ErrAppend", err)
	}
}

func TestEditAndDeleteCheckTheAuthor(t *testing.T) {
	h, log := newHandler(t, commands.Config{Authors: authors{"m1": "alice"}})
	ctx := context.Background()
	if _, err := h.EditMessage(ctx, commands.EditMessage{Room: "r", User: "bob", MessageID: "m1", Text: "x"}); !errors.Is(err, commands.ErrNotAuthor) {
		t.Fatalf("edit by bob: %v", err)
	}
	if _, err := h.DeleteMessage(ctx, commands.DeleteMessage{Room: "r", User: "alice", MessageID: "m2"}); !errors.Is(err, commands.ErrUnknownMessage) {
		t.Fatalf("delete unknown: %v", err)
	}
	if _, err := h.EditMessage(ctx, commands.EditMessage{Room: "r", User: "alice", MessageID: "m1", Text: "x"}); err != nil {
		t.Fatalf("edit by author: %v", err)
	}
	if _, err := h.DeleteMessage(ctx, commands.DeleteMessage{Room: "r", User: "alice", MessageID: "m1"}); err != nil {
		t.Fatalf("delete by author: %v", err)
	}
	if len(log.evs) != 2 {
		t.Fatalf("%d events appended, want 2", len(log.evs))
	}
}

func TestMentions(t *testing.T) {
	tests := map[string]string{
		"hi @bob":              "bob",
		"@a @b @a":             "a,b",
		"mail me a@b.com":      "",
		"(@carol), @dave.":     "carol,dave",
		"@@x":                  "",
		"no mentions here":     "",
		"@alice_1 and @bob-2!": "alice_1,bob-2",
	}
	for in, want := range tests {
		if got := strings.Join(commands.Mentions(in), ","); got != want {
			t.Errorf("Mentions(%q) = %q, want %q", in, got, want)
		}
	}
}

type members map[string]events.Position // user → position of their join

func (m members) Membership(_ context.Context, _, user string) (events.Position, bool, error) {
	p, ok := m[user]
	return p, ok, nil
}

func TestJoinOfAMemberAppendsNothing(t *testing.T) {
	joined := events.Position{Partition: 2, Offset: 7}
	h, log := newHandler(t, commands.Config{Members: members{"ann": joined}})
	ctx := context.Background()

	res, err := h.JoinRoom(ctx, commands.JoinRoom{Room: "r", User: "ann"})
	if err != nil || !res.Duplicate || res.Position != joined || len(log.evs) != 0 {
		t.Fatalf("join of a member: %+v, %v, %d events; want a duplicate at %v", res, err, len(log.evs), joined)
	}
	if _, err := h.JoinRoom(ctx, commands.JoinRoom{Room: "r", User: "bob"}); err != nil || len(log.evs) != 1 {
		t.Fatalf("join of a newcomer: %v, %d events", err, len(log.evs))
	}
	// Right after a leave the read model may still list ann: the join must
	// be appended all the same.
	if _, err := h.LeaveRoom(ctx, commands.LeaveRoom{Room: "r", User: "ann"}); err != nil {
		t.Fatal(err)
	}
	res, err = h.JoinRoom(ctx, commands.JoinRoom{Room: "r", User: "ann"})
	if err != nil || res.Duplicate || len(log.evs) != 3 {
		t.Fatalf("join after a leave: %+v, %v, %d events; want it appended", res, err, len(log.evs))
	}
}
