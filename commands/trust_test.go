package commands_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/rtstack/rtstack/commands"
	"github.com/rtstack/rtstack/events"
	"github.com/rtstack/rtstack/internal/keyring"
)

type hookIDs map[string][]string

func (h hookIDs) WebhookIDs(_ context.Context, room string) ([]string, error) { return h[room], nil }

func TestEmojiMustBeOneEmoji(t *testing.T) {
	h, _ := newHandler(t, commands.Config{})
	tests := []struct {
		emoji string
		ok    bool
	}{
		{"👍", true},
		{"👍🏽", true},    // skin tone modifier: one cluster
		{"👩‍👩‍👧", true}, // ZWJ sequence
		{"🇫🇷", true},    // flag
		{"❤️", true},    // with variation selector
		{"1️⃣", true},   // keycap
		{"👍👍", false},   // two emoji
		{"a", false},    // a letter
		{":+1:", false}, // a shortcode, not an emoji
		{"👍a", false},
		{"\u0301", false}, // a lone combining mark
		{"x\x00", false},
		{"", false},
	}
	for _, tt := range tests {
		_, err := h.React(context.Background(), commands.React{Room: "r", User: "u", MessageID: "m1", Emoji: tt.emoji})
		if (err == nil) != tt.ok {
			t.Errorf("React(%q) = %v, want ok=%v", tt.emoji, err, tt.ok)
		}
		if err != nil && !errors.Is(err, commands.ErrInvalid) {
			t.Errorf("React(%q) error %v is not ErrInvalid", tt.emoji, err)
		}
	}
}

func TestNULIsRefusedEverywhere(t *testing.T) {
	h, log := newHandler(t, commands.Config{})
	ctx := context.Background()
	_, e1 := h.SendMessage(ctx, commands.SendMessage{Room: "r", User: "u", Text: "a\x00b"})
	_, e2 := h.SendMessage(ctx, commands.SendMessage{Room: "r", User: "u\x00x", Text: "hi"})
	_, e3 := h.SendMessage(ctx, commands.SendMessage{Room: "r", User: "u", Text: "hi", ClientID: "c\x00"})
	_, e4 := h.EditMessage(ctx, commands.EditMessage{Room: "r", User: "u", MessageID: "m\x00", Text: "hi"})
	for i, err := range []error{e1, e2, e3, e4} {
		if !errors.Is(err, commands.ErrInvalid) {
			t.Errorf("case %d: %v, want ErrInvalid", i+1, err)
		}
	}
	if len(log.evs) != 0 {
		t.Errorf("%d events appended", len(log.evs))
	}
}

func TestWebhookSecretIsRequiredAndSealed(t *testing.T) {
	kr, err := keyring.Parse(keyring.NewSpec("k1"))
	if err != nil {
		t.Fatal(err)
	}
	h, log := newHandler(t, commands.Config{Sealer: kr, AllowPrivateWebhooks: true})
	ctx := context.Background()
	if _, err := h.RegisterWebhook(ctx, commands.RegisterWebhook{Room: "r", User: "admin", URL: "http://127.0.0.1/x"}); !errors.Is(err, commands.ErrInvalid) {
		t.Fatalf("webhook without secret: %v, want ErrInvalid", err)
	}
	res, err := h.RegisterWebhook(ctx, commands.RegisterWebhook{Room: "r", User: "admin", URL: "http://127.0.0.1/x", Secret: "plain-s3cret"})
	if err != nil {
		t.Fatal(err)
	}
	ev := res.Event.(*events.WebhookRegistered)
	if strings.Contains(ev.Secret, "plain-s3cret") || keyring.KeyID(ev.Secret) != "k1" {
		t.Fatalf("event secret %q is not sealed with k1", ev.Secret)
	}
	if got, err := kr.Open(ev.Secret, ev.WebhookID); err != nil || got != "plain-s3cret" {
		t.Fatalf("open sealed secret = %q, %v", got, err)
	}
	if len(log.evs) != 1 {
		t.Fatalf("%d events, want 1", len(log.evs))
	}
	noKey, _ := newHandler(t, commands.Config{AllowPrivateWebhooks: true})
	if _, err := noKey.RegisterWebhook(ctx, commands.RegisterWebhook{Room: "r", User: "admin", URL: "http://127.0.0.1/x", Secret: "s"}); !errors.Is(err, commands.ErrNoSealer) {
		t.Fatalf("without a sealer: %v, want ErrNoSealer", err)
	}
}

func TestWebhooksPerRoomAndRemoval(t *testing.T) {
	kr, _ := keyring.Parse(keyring.NewSpec("k1"))
	hooks := hookIDs{"full": {"w1", "w2"}, "r": {"w1"}}
	h, log := newHandler(t, commands.Config{Sealer: kr, Webhooks: hooks, MaxWebhooksPerRoom: 2, AllowPrivateWebhooks: true})
	ctx := context.Background()
	reg := commands.RegisterWebhook{Room: "full", User: "admin", URL: "http://127.0.0.1/x", Secret: "s"}
	if _, err := h.RegisterWebhook(ctx, reg); !errors.Is(err, commands.ErrTooManyWebhooks) {
		t.Fatalf("third webhook: %v, want ErrTooManyWebhooks", err)
	}
	reg.Room = "r"
	if _, err := h.RegisterWebhook(ctx, reg); err != nil {
		t.Fatalf("second webhook of r: %v", err)
	}
	if _, err := h.RemoveWebhook(ctx, commands.RemoveWebhook{Room: "r", User: "admin", WebhookID: "w9"}); !errors.Is(err, commands.ErrUnknownWebhook) {
		t.Fatalf("remove unknown: %v, want ErrUnknownWebhook", err)
	}
	res, err := h.RemoveWebhook(ctx, commands.RemoveWebhook{Room: "r", User: "admin", WebhookID: "w1"})
	if err != nil {
		t.Fatal(err)
	}
	if ev, ok := res.Event.(*events.WebhookRemoved); !ok || ev.WebhookID != "w1" || len(log.evs) != 2 {
		t.Fatalf("remove appended %#v (%d events)", res.Event, len(log.evs))
	}
}

type userReactions []string

func (u userReactions) UserReactions(context.Context, string, string, string) ([]string, error) {
	return u, nil
}

func TestReactionsPerUserAreCapped(t *testing.T) {
	full := make(userReactions, commands.MaxReactionsPerUser)
	for i := range full {
		full[i] = []string{"👍", "🎉", "😀", "😂", "❤️", "🔥", "👀", "🚀", "✅", "💯"}[i]
	}
	h, log := newHandler(t, commands.Config{Reactions: full})
	ctx := context.Background()
	if _, err := h.React(ctx, commands.React{Room: "r", User: "u", MessageID: "m1", Emoji: "🙏"}); !errors.Is(err, commands.ErrTooManyReactions) {
		t.Fatalf("an 11th emoji: %v, want ErrTooManyReactions", err)
	}
	if _, err := h.React(ctx, commands.React{Room: "r", User: "u", MessageID: "m1", Emoji: "👍"}); err != nil {
		t.Fatalf("one the user has already: %v", err)
	}
	if _, err := h.React(ctx, commands.React{Room: "r", User: "u", MessageID: "m1", Emoji: "🙏", Remove: true}); err != nil {
		t.Fatalf("a removal is never capped: %v", err)
	}
	if len(log.evs) != 2 {
		t.Fatalf("%d events, want 2", len(log.evs))
	}
}

func TestSealedPrefixIsTheEventsOne(t *testing.T) {
	if keyring.Prefix != events.SealedSecretPrefix {
		t.Fatalf("keyring seals with %q, events recognise %q", keyring.Prefix, events.SealedSecretPrefix)
	}
	legacy, _ := json.Marshal(&events.WebhookRegistered{WebhookID: "w1", Secret: "plain"})
	sealed, _ := json.Marshal(&events.WebhookRegistered{WebhookID: "w1", Secret: keyring.Prefix + "k:x"})
	if strings.Contains(string(legacy), "plain") || !strings.Contains(string(sealed), keyring.Prefix+"k:x") || !strings.Contains(string(legacy), `"webhook_id":"w1"`) {
		t.Fatalf("JSON of a plaintext registration %s, of a sealed one %s", legacy, sealed)
	}
}
