package tasks

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/rtstack/rtstack/events"
)

// Kind names what a task does.
type Kind string

// The task kinds.
const (
	// KindWebhook POSTs a message to one registered webhook of its room.
	KindWebhook Kind = "webhook"
	// KindNotify tells a mentioned user about a message.
	KindNotify Kind = "notify"
)

// HTTP headers of every delivery.
const (
	// HeaderSignature is "sha256=HEX", the HMAC-SHA256 of the body with the
	// webhook's secret.
	HeaderSignature = "X-Rtstack-Signature"
	// HeaderDelivery is the task id: the same on every attempt of a task,
	// so a receiver can drop duplicates.
	HeaderDelivery = "X-Rtstack-Delivery"
)

// DefaultRetryDelays are the waits between attempts (RETRY_DELAYS):
// attempts = len(delays) + 1, then the dead-letter queue.
var DefaultRetryDelays = []time.Duration{time.Second, 10 * time.Second, time.Minute}

// ParseRetryDelays reads RETRY_DELAYS ("1s,10s,60s"). An empty string gives
// DefaultRetryDelays; every delay must be positive.
func ParseRetryDelays(s string) ([]time.Duration, error) {
	if strings.TrimSpace(s) == "" {
		return slices.Clone(DefaultRetryDelays), nil
	}
	var out []time.Duration
	for _, f := range strings.Split(s, ",") {
		d, err := time.ParseDuration(strings.TrimSpace(f))
		if err != nil {
			return nil, fmt.Errorf("retry delays %q: %w", s, err)
		}
		if d <= 0 {
			return nil, fmt.Errorf("retry delays %q: %s is not positive", s, d)
		}
		out = append(out, d)
	}
	return out, nil
}

// Task is one side effect. Body is fixed when the task is made, so every
// attempt sends the same bytes (and so the same signature).
type Task struct {
	ID      string `json:"id"`
	Kind    Kind   `json:"kind"`
	EventID string `json:"event_id"`
	Room    string `json:"room"`
	// Webhook tasks: the registration and where to POST. SealedSecret is
	// the secret as the log holds it, sealed with a keyring key and bound
	// to WebhookID: the worker opens it to sign, and the plaintext never
	// travels through RabbitMQ.
	WebhookID    string `json:"webhook_id,omitempty"`
	URL          string `json:"url,omitempty"`
	SealedSecret string `json:"sealed_secret,omitempty"`
	// Notify tasks: the mentioned user.
	User string `json:"user,omitempty"`
	// Body is the webhook payload (a Message) or the notification frame (a
	// Notification).
	Body json.RawMessage `json:"body"`
	// Trace is the W3C trace context (traceparent, tracestate, baggage) of
	// the action that caused the task. It travels in the message headers,
	// not the body, so tracing tools see it and retries keep it.
	Trace map[string]string `json:"-"`
}

// TraceFields are the keys of Task.Trace, the W3C trace context's header
// names.
var TraceFields = []string{"traceparent", "tracestate", "baggage"}

// Summary describes the task for operators without its secret.
func (t Task) Summary() string {
	switch t.Kind {
	case KindWebhook:
		return fmt.Sprintf("webhook %s of room %s → %s", t.WebhookID, t.Room, t.URL)
	case KindNotify:
		return fmt.Sprintf("mention of %s in room %s", t.User, t.Room)
	}
	return fmt.Sprintf("%s task of room %s", t.Kind, t.Room)
}

// Validate reports a task that cannot be performed, whatever the attempt.
func (t Task) Validate() error {
	switch {
	case t.ID == "":
		return fmt.Errorf("task without id")
	case t.Kind == KindWebhook && t.URL == "":
		return fmt.Errorf("webhook task %s without url", t.ID)
	case t.Kind == KindWebhook && t.SealedSecret == "":
		return fmt.Errorf("webhook task %s without a sealed secret (its registration predates sealing and no keyring sealed it)", t.ID)
	case t.Kind == KindNotify && t.User == "":
		return fmt.Errorf("notify task %s without user", t.ID)
	case t.Kind != KindWebhook && t.Kind != KindNotify:
		return fmt.Errorf("task %s: unknown kind %q", t.ID, t.Kind)
	}
	return nil
}

// ID is the deterministic task id: a hash of the message id, the kind and
// the target (webhook id or user). Replaying an event yields the same ids,
// which is what lets workers do each task once; keyed by the message id
// rather than the event id, even two events of one message (a duplicate
// append) make one delivery.
func ID(messageID string, kind Kind, target string) string {
	h := sha256.New()
	for _, s := range []string{messageID, string(kind), target} {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// Sign returns the X-Rtstack-Signature value of body: "sha256=" and the hex
// HMAC-SHA256 of body with secret.
func Sign(secret string, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// VerifySignature reports whether header is body's signature with secret, in
// constant time. Receivers use it; tests too.
func VerifySignature(secret string, body []byte, header string) bool {
	return hmac.Equal([]byte(Sign(secret, body)), []byte(header))
}

// Message is the JSON a webhook receives.
type Message struct {
	Room      string `json:"room"`
	MessageID string `json:"message_id"`
	User      string `json:"user"`
	Text      string `json:"text"`
	TS        int64  `json:"ts"`
	Partition int32  `json:"partition"`
	Offset    int64  `json:"offset"`
}

// Notification is the frame a mentioned user gets. User (the recipient) is
// set only in the body POSTed to NOTIFY_URL, never in the WebSocket frame.
type Notification struct {
	Type      string `json:"type"` // "notification"
	Kind      string `json:"kind"` // "mention"
	User      string `json:"user,omitempty"`
	Room      string `json:"room"`
	MessageID string `json:"message_id"`
	From      string `json:"from"`
	Text      string `json:"text"`
	TS        int64  `json:"ts"`
}

// Webhook is a registration as the reactor folds it from the log.
// SealedSecret is as the log holds it (see events.WebhookRegistered).
type Webhook struct {
	ID, URL, SealedSecret string
}

// WebhookFrom turns a registration event into a Webhook.
func WebhookFrom(ev *events.WebhookRegistered) Webhook {
	return Webhook{ID: ev.WebhookID, URL: ev.URL, SealedSecret: ev.Secret}
}

// ForMessage decides the tasks of a sent message: one webhook task per
// webhook of its room, one notify task per mentioned user other than the
// author (each user once). It is a pure function of its arguments.
func ForMessage(ev *events.MessageSent, pos events.Position, hooks []Webhook) ([]Task, error) {
	var out []Task
	if len(hooks) > 0 {
		body, err := json.Marshal(Message{
			Room: ev.Room, MessageID: ev.MessageID, User: ev.User, Text: ev.Text,
			TS: ev.Time, Partition: pos.Partition, Offset: pos.Offset,
		})
		if err != nil {
			return nil, fmt.Errorf("webhook payload of %s: %w", ev.ID, err)
		}
		for _, h := range hooks {
			out = append(out, Task{
				ID: ID(ev.MessageID, KindWebhook, h.ID), Kind: KindWebhook, EventID: ev.ID, Room: ev.Room,
				WebhookID: h.ID, URL: h.URL, SealedSecret: h.SealedSecret, Body: body,
			})
		}
	}
	var seen []string
	for _, u := range ev.Mentions {
		if u == "" || u == ev.User || slices.Contains(seen, u) {
			continue
		}
		seen = append(seen, u)
		frame, err := json.Marshal(Notification{
			Type: "notification", Kind: "mention", Room: ev.Room, MessageID: ev.MessageID,
			From: ev.User, Text: ev.Text, TS: ev.Time,
		})
		if err != nil {
			return nil, fmt.Errorf("notification of %s: %w", ev.ID, err)
		}
		out = append(out, Task{
			ID: ID(ev.MessageID, KindNotify, u), Kind: KindNotify, EventID: ev.ID, Room: ev.Room,
			User: u, Body: frame,
		})
	}
	return out, nil
}
