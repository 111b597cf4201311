package gateway

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/rtstack/rtstack/events"
	"github.com/rtstack/rtstack/gateway/clienterr"
	"github.com/rtstack/rtstack/projections/view"
)

// clientFrame is every field any client frame may carry; type selects which
// matter. Unknown fields are ignored.
type clientFrame struct {
	Type      string    `json:"type"`
	Room      string    `json:"room"`
	Since     *sincePos `json:"since"`
	Text      string    `json:"text"`
	ClientID  *string   `json:"client_id"`
	MessageID string    `json:"message_id"`
	Emoji     string    `json:"emoji"`
	Remove    bool      `json:"remove"`
	Channel   string    `json:"channel"`
	Token     string    `json:"token"`
}

// sincePos is a join's recovery position. TopicID is optional: a client that
// kept the log's id (from an earlier resync-free session) is refused with
// resync if the log was recreated since.
type sincePos struct {
	Partition *int32 `json:"partition"`
	Offset    *int64 `json:"offset"`
	TopicID   string `json:"topic_id"`
}

// parseFrame decodes one client frame. The error wraps errBadJSON or
// errInvalidFrame.
func parseFrame(b []byte) (clientFrame, error) {
	var f clientFrame
	b = bytes.TrimSpace(b)
	if len(b) == 0 || b[0] != '{' {
		return f, fmt.Errorf("%w: a frame is one JSON object", errBadJSON)
	}
	if err := json.Unmarshal(b, &f); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return f, fmt.Errorf("%w: field %s must be %s", errInvalidFrame, te.Field, te.Type)
		}
		return f, fmt.Errorf("%w: %v", errBadJSON, err) //nolint:errorlint // the json detail is for people
	}
	return f, nil
}

var (
	errBadJSON      = clienterr.ErrBadJSON
	errInvalidFrame = clienterr.ErrInvalid
)

func (f *clientFrame) refString() string {
	if f.ClientID == nil {
		return ""
	}
	return *f.ClientID
}

// Server frames. Each is encoded once and its bytes shared by every
// recipient.

type eventFrame struct {
	Type      string   `json:"type"`
	Room      string   `json:"room"`
	MessageID string   `json:"message_id,omitempty"`
	User      string   `json:"user"`
	Text      *string  `json:"text,omitempty"`
	Emoji     string   `json:"emoji,omitempty"`
	Removed   bool     `json:"removed,omitempty"`
	ClientID  string   `json:"client_id,omitempty"`
	Mentions  []string `json:"mentions,omitempty"`
	TS        int64    `json:"ts"`
	Partition int32    `json:"partition"`
	Offset    int64    `json:"offset"`
}

// encodeEvent returns the frame of a log record, or nil for an event clients
// are not shown (WebhookRegistered: it carries a secret). messageID is set
// for MessageSent, for duplicate suppression.
func encodeEvent(rec events.Record) (frame []byte, messageID string, err error) {
	env := rec.Event.Env()
	f := eventFrame{Room: env.Room, User: env.User, TS: env.Time, Partition: rec.Partition, Offset: rec.Offset}
	switch ev := rec.Event.(type) {
	case *events.MessageSent:
		f.Type, f.MessageID, f.Text, f.ClientID, f.Mentions = "message", ev.MessageID, &ev.Text, ev.ClientID, ev.Mentions
		messageID = ev.MessageID
	case *events.MessageEdited:
		f.Type, f.MessageID, f.Text = "edited", ev.MessageID, &ev.Text
	case *events.MessageDeleted:
		f.Type, f.MessageID = "deleted", ev.MessageID
	case *events.ReactionAdded:
		f.Type, f.MessageID, f.Emoji = "reaction", ev.MessageID, ev.Emoji
	case *events.ReactionRemoved:
		f.Type, f.MessageID, f.Emoji, f.Removed = "reaction", ev.MessageID, ev.Emoji, true
	case *events.MemberJoined:
		f.Type = "joined"
	case *events.MemberLeft:
		f.Type = "left"
	default:
		return nil, "", nil
	}
	b, err := json.Marshal(&f)
	return b, messageID, err
}

type ackFrame struct {
	Type      string `json:"type"`
	ClientID  string `json:"client_id"`
	MessageID string `json:"message_id,omitempty"`
	Partition int32  `json:"partition"`
	Offset    int64  `json:"offset"`
	Duplicate bool   `json:"duplicate,omitempty"`
}

type errorFrame struct {
	Type    string  `json:"type"`
	Code    string  `json:"code"`
	Message string  `json:"message"`
	Ref     *string `json:"ref"`
}

type resyncFrame struct {
	Type   string `json:"type"`
	Room   string `json:"room"`
	Reason string `json:"reason"`
}

type presenceFrame struct {
	Type  string   `json:"type"`
	Room  string   `json:"room"`
	Users []string `json:"users"`
}

// typingFrame says user is typing in room. Ephemeral: never in the log.
type typingFrame struct {
	Type string `json:"type"`
	Room string `json:"room"`
	User string `json:"user"`
}

type leaderboardFrame struct {
	Type    string            `json:"type"`
	Entries []view.ScoreEntry `json:"entries"`
}

type countersFrame struct {
	Type string `json:"type"`
	view.Counters
}

// mustJSON encodes a frame whose type cannot fail to encode.
func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil { // cannot happen: every frame type is plain data
		return []byte(`{"type":"error","code":"internal","message":"encode frame","ref":null}`)
	}
	return b
}
