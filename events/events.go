package events

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// Type names an event type. It is written in each record's "event-type"
// header and selects the Avro schema.
type Type string

// The event types of the chat log. Names are past tense: each is a fact.
const (
	TypeMessageSent       Type = "MessageSent"
	TypeMessageEdited     Type = "MessageEdited"
	TypeMessageDeleted    Type = "MessageDeleted"
	TypeReactionAdded     Type = "ReactionAdded"
	TypeReactionRemoved   Type = "ReactionRemoved"
	TypeMemberJoined      Type = "MemberJoined"
	TypeMemberLeft        Type = "MemberLeft"
	TypeWebhookRegistered Type = "WebhookRegistered"
	TypeWebhookRemoved    Type = "WebhookRemoved"
)

// Types lists every event type in a fixed order (the order schema ids are
// assigned in when rtstack serves its own registry).
var Types = []Type{
	TypeMessageSent,
	TypeMessageEdited,
	TypeMessageDeleted,
	TypeReactionAdded,
	TypeReactionRemoved,
	TypeMemberJoined,
	TypeMemberLeft,
	TypeWebhookRegistered,
	TypeWebhookRemoved,
}

// Envelope is what every event carries. Time is the event's own time in
// Unix milliseconds, set once when the command is decided; projections use
// it instead of the wall clock so a replay yields identical state.
type Envelope struct {
	ID   string `avro:"id" json:"id"`
	Room string `avro:"room" json:"room"`
	User string `avro:"user" json:"user"`
	Time int64  `avro:"ts" json:"ts"`
}

// Env returns the envelope; it lets every event satisfy Event by embedding.
func (e Envelope) Env() Envelope { return e }

// At returns the event time as a time.Time in UTC.
func (e Envelope) At() time.Time { return time.UnixMilli(e.Time).UTC() }

// Key is the stream key: events of one room share a partition and so a total
// order.
func (e Envelope) Key() string { return e.Room }

// Event is any chat event. Events travel as pointers (*MessageSent, …):
// only the pointer types implement Event, so a type switch has one case per
// type.
type Event interface {
	Env() Envelope
	Type() Type
}

// MessageSent: a user posted a message. MessageID is derived from the room,
// the user and the client's idempotency key, so a resent command yields the
// same id and projections keep one row.
type MessageSent struct {
	Envelope
	MessageID string `avro:"message_id" json:"message_id"`
	ClientID  string `avro:"client_id" json:"client_id"`
	Text      string `avro:"text" json:"text"`
	// Mentions are the user ids named with @ in Text (schema version 2;
	// events written with version 1 read as nil).
	Mentions []string `avro:"mentions" json:"mentions,omitempty"`
}

// MessageEdited: the author replaced the text of a message.
type MessageEdited struct {
	Envelope
	MessageID string `avro:"message_id" json:"message_id"`
	Text      string `avro:"text" json:"text"`
}

// MessageDeleted: the author deleted a message.
type MessageDeleted struct {
	Envelope
	MessageID string `avro:"message_id" json:"message_id"`
}

// MaxReactionsPerUser caps the distinct emoji one user has on one message.
// It is a rule of the log's meaning: the gateway refuses a reaction past it,
// and the projections ignore one that reached the log anyway, live and in a
// rebuild alike.
const MaxReactionsPerUser = 10

// ReactionAdded: a user reacted to a message with an emoji.
type ReactionAdded struct {
	Envelope
	MessageID string `avro:"message_id" json:"message_id"`
	Emoji     string `avro:"emoji" json:"emoji"`
}

// ReactionRemoved: a user took back a reaction.
type ReactionRemoved struct {
	Envelope
	MessageID string `avro:"message_id" json:"message_id"`
	Emoji     string `avro:"emoji" json:"emoji"`
}

// MemberJoined: a user became a member of a room. Membership is durable;
// online presence is not an event.
type MemberJoined struct {
	Envelope
}

// MemberLeft: a user stopped being a member of a room.
type MemberLeft struct {
	Envelope
}

// WebhookRegistered: an admin registered a URL to receive the room's
// messages. WebhookID is unique per registration. Secret signs deliveries
// and is sealed (internal/keyring: "rtsk1:KEY_ID:…", bound to WebhookID):
// the log never holds it in the clear. Events written before sealing carry
// the plaintext; readers treat a value without the prefix as such.
type WebhookRegistered struct {
	Envelope
	WebhookID string `avro:"webhook_id" json:"webhook_id"`
	URL       string `avro:"url" json:"url"`
	Secret    string `avro:"secret" json:"secret"`
}

// SealedSecretPrefix starts every sealed secret (internal/keyring's format).
const SealedSecretPrefix = "rtsk1:"

// MarshalJSON writes the event with its secret only if sealed: a
// registration from before sealing holds the plaintext, and JSON is what
// CLI output and logs are made of.
func (e WebhookRegistered) MarshalJSON() ([]byte, error) {
	type plain WebhookRegistered // without this method
	if e.Secret != "" && !strings.HasPrefix(e.Secret, SealedSecretPrefix) {
		e.Secret = "[redacted: stored in the clear before sealing; register the webhook again]"
	}
	return json.Marshal(plain(e))
}

// WebhookRemoved: an admin removed a webhook of the room; nothing is
// delivered to it after this event.
type WebhookRemoved struct {
	Envelope
	WebhookID string `avro:"webhook_id" json:"webhook_id"`
}

func (*MessageSent) Type() Type       { return TypeMessageSent }
func (*MessageEdited) Type() Type     { return TypeMessageEdited }
func (*MessageDeleted) Type() Type    { return TypeMessageDeleted }
func (*ReactionAdded) Type() Type     { return TypeReactionAdded }
func (*ReactionRemoved) Type() Type   { return TypeReactionRemoved }
func (*MemberJoined) Type() Type      { return TypeMemberJoined }
func (*MemberLeft) Type() Type        { return TypeMemberLeft }
func (*WebhookRegistered) Type() Type { return TypeWebhookRegistered }
func (*WebhookRemoved) Type() Type    { return TypeWebhookRemoved }

// New returns a pointer to a zero event of type t, ready to be decoded into.
func New(t Type) (Event, error) {
	switch t {
	case TypeMessageSent:
		return &MessageSent{}, nil
	case TypeMessageEdited:
		return &MessageEdited{}, nil
	case TypeMessageDeleted:
		return &MessageDeleted{}, nil
	case TypeReactionAdded:
		return &ReactionAdded{}, nil
	case TypeReactionRemoved:
		return &ReactionRemoved{}, nil
	case TypeMemberJoined:
		return &MemberJoined{}, nil
	case TypeMemberLeft:
		return &MemberLeft{}, nil
	case TypeWebhookRegistered:
		return &WebhookRegistered{}, nil
	case TypeWebhookRemoved:
		return &WebhookRemoved{}, nil
	}
	return nil, fmt.Errorf("unknown event type %q", t)
}

// Position is where a record sits in the log. Positions are ordered only
// within one partition.
type Position struct {
	Partition int32 `json:"partition"`
	Offset    int64 `json:"offset"`
}

func (p Position) String() string { return fmt.Sprintf("%d:%d", p.Partition, p.Offset) }

// Record is a decoded event with its position in the log.
type Record struct {
	Position
	Event Event
}
