package commands

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/rtstack/rtstack/events"
)

// Log appends an event and returns its position once the broker has it.
type Log interface {
	Append(ctx context.Context, ev events.Event) (events.Position, error)
}

// Authors answers who wrote a message, from a read model. found is false
// when the message is unknown (or not yet projected).
type Authors interface {
	Author(ctx context.Context, room, messageID string) (user string, found bool, err error)
}

// Members answers whether user is a member of room, from a read model, and
// the position of the MemberJoined that made them one.
type Members interface {
	Membership(ctx context.Context, room, user string) (joined events.Position, member bool, err error)
}

// Outcomes remembers the position each idempotency key was appended at, so a
// resent SendMessage is answered without a second append. Implementations
// must be shared by every gateway (Redis) and may forget old keys.
type Outcomes interface {
	Get(ctx context.Context, key string) (events.Position, bool, error)
	Put(ctx context.Context, key string, pos events.Position) error
}

// Errors from deciding against the read model.
var (
	ErrNotAuthor      = errors.New("not the author of the message")
	ErrUnknownMessage = errors.New("unknown message")
)

// ErrAppend wraps a failed append: the event is not known to be in the log
// and the client must not be acknowledged.
var ErrAppend = errors.New("append failed")

// Config configures a Handler. Log is required; the rest default.
type Config struct {
	Log Log
	// Authors checks edit and delete authorship; nil skips the check (the
	// projections still ignore an edit by a non-author).
	Authors Authors
	// Members lets a join by a user who is already a member (a reconnect,
	// another tab) be answered without appending again; nil appends every
	// join (the projections fold repeated joins idempotently).
	Members Members
	// Outcomes deduplicates resent messages; nil keeps only the
	// deterministic message id (projections keep one row).
	Outcomes Outcomes
	// Now is the clock giving each event its time; default time.Now.
	Now func() time.Time
	// NewID returns a unique event id; default crypto/rand.Text (128 random
	// bits, 26 base32 characters).
	NewID func() string
	// AllowPrivateWebhooks permits webhook targets on loopback and private
	// addresses; default false.
	AllowPrivateWebhooks bool
}

// Handler validates commands, decides their events and appends them. It is
// safe for concurrent use.
type Handler struct {
	cfg Config

	mu     sync.Mutex           // guards leaves
	leaves map[string]time.Time // room+user → when this process last appended their MemberLeft
}

// leaveGrace is how long after a leave a join always appends: the read
// model behind Members may not have applied the leave yet.
const leaveGrace = 10 * time.Second

// Validate reports every problem of c once its defaults are applied,
// joined.
func (c Config) Validate() error {
	c = c.withDefaults()
	var errs []error
	if c.Log == nil {
		errs = append(errs, errors.New("commands: Config.Log is required"))
	}
	return errors.Join(errs...)
}

// withDefaults returns c with every nil field that has a default set.
func (c Config) withDefaults() Config {
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.NewID == nil {
		c.NewID = rand.Text
	}
	return c
}

// NewHandler returns a Handler for cfg.
func NewHandler(cfg Config) (*Handler, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Handler{cfg: cfg, leaves: map[string]time.Time{}}, nil
}

// Result is the outcome of a command: the event appended and where.
// Duplicate is true when a resent SendMessage was answered from Outcomes
// without appending; Event is then nil.
type Result struct {
	Event     events.Event
	Position  events.Position
	MessageID string
	Duplicate bool
}

func (h *Handler) envelope(room, user string) events.Envelope {
	return events.Envelope{ID: h.cfg.NewID(), Room: room, User: user, Time: h.cfg.Now().UnixMilli()}
}

func (h *Handler) append(ctx context.Context, ev events.Event) (events.Position, error) {
	pos, err := h.cfg.Log.Append(ctx, ev)
	if err != nil {
		return pos, appendFailed(err)
	}
	return pos, nil
}

func appendFailed(err error) error { return fmt.Errorf("%w: %w", ErrAppend, err) }

// SendMessage appends a MessageSent, or answers a resend of the same client
// id with the first append's position.
func (h *Handler) SendMessage(ctx context.Context, c SendMessage) (Result, error) {
	return h.run(ctx, c)
}

func (c SendMessage) decide(ctx context.Context, h *Handler) (decision, error) {
	if err := c.validate(); err != nil {
		return decision{}, err
	}
	msgID := MessageID(c.Room, c.User, c.ClientID)
	if c.ClientID == "" {
		msgID = "m" + h.cfg.NewID()
	}
	key := c.Room + "\x00" + c.User + "\x00" + c.ClientID
	if c.ClientID != "" && h.cfg.Outcomes != nil {
		pos, ok, err := h.cfg.Outcomes.Get(ctx, key)
		if err == nil && ok {
			return decision{res: Result{Position: pos, MessageID: msgID, Duplicate: true}}, nil
		}
		// A failing dedupe store must not stop chat: the deterministic id
		// still makes the projections keep one row.
	}
	ev := &events.MessageSent{
		Envelope:  h.envelope(c.Room, c.User),
		MessageID: msgID,
		ClientID:  c.ClientID,
		Text:      c.Text,
		Mentions:  Mentions(c.Text),
	}
	d := decision{ev: ev, res: Result{Event: ev, MessageID: msgID}}
	if c.ClientID != "" && h.cfg.Outcomes != nil {
		d.after = func(ctx context.Context, pos events.Position) {
			_ = h.cfg.Outcomes.Put(ctx, key, pos) // best effort, see above
		}
	}
	return d, nil
}

func (h *Handler) checkAuthor(ctx context.Context, room, user, messageID string) error {
	if h.cfg.Authors == nil {
		return nil
	}
	author, found, err := h.cfg.Authors.Author(ctx, room, messageID)
	switch {
	case err != nil:
		return fmt.Errorf("look up author of %s: %w", messageID, err)
	case !found:
		return fmt.Errorf("%w: %s in %s", ErrUnknownMessage, messageID, room)
	case author != user:
		return fmt.Errorf("%w: %s", ErrNotAuthor, messageID)
	}
	return nil
}

// EditMessage appends a MessageEdited after checking authorship.
func (h *Handler) EditMessage(ctx context.Context, c EditMessage) (Result, error) {
	return h.run(ctx, c)
}

func (c EditMessage) decide(ctx context.Context, h *Handler) (decision, error) {
	if err := c.validate(); err != nil {
		return decision{}, err
	}
	if err := h.checkAuthor(ctx, c.Room, c.User, c.MessageID); err != nil {
		return decision{}, err
	}
	ev := &events.MessageEdited{Envelope: h.envelope(c.Room, c.User), MessageID: c.MessageID, Text: c.Text}
	return decision{ev: ev, res: Result{Event: ev, MessageID: c.MessageID}}, nil
}

// DeleteMessage appends a MessageDeleted after checking authorship.
func (h *Handler) DeleteMessage(ctx context.Context, c DeleteMessage) (Result, error) {
	return h.run(ctx, c)
}

func (c DeleteMessage) decide(ctx context.Context, h *Handler) (decision, error) {
	if err := c.validate(); err != nil {
		return decision{}, err
	}
	if err := h.checkAuthor(ctx, c.Room, c.User, c.MessageID); err != nil {
		return decision{}, err
	}
	ev := &events.MessageDeleted{Envelope: h.envelope(c.Room, c.User), MessageID: c.MessageID}
	return decision{ev: ev, res: Result{Event: ev, MessageID: c.MessageID}}, nil
}

// React appends a ReactionAdded or ReactionRemoved.
func (h *Handler) React(ctx context.Context, c React) (Result, error) {
	return h.run(ctx, c)
}

func (c React) decide(_ context.Context, h *Handler) (decision, error) {
	if err := c.validate(); err != nil {
		return decision{}, err
	}
	var ev events.Event = &events.ReactionAdded{Envelope: h.envelope(c.Room, c.User), MessageID: c.MessageID, Emoji: c.Emoji}
	if c.Remove {
		ev = &events.ReactionRemoved{Envelope: h.envelope(c.Room, c.User), MessageID: c.MessageID, Emoji: c.Emoji}
	}
	return decision{ev: ev, res: Result{Event: ev, MessageID: c.MessageID}}, nil
}

// JoinRoom appends a MemberJoined, unless Members says the user already
// is one: then the result is a Duplicate at the position of the join that
// made them a member, and nothing is appended.
func (h *Handler) JoinRoom(ctx context.Context, c JoinRoom) (Result, error) {
	if err := validateRoomUser(c.Room, c.User); err != nil {
		return Result{}, err
	}
	if h.cfg.Members != nil && !h.leftRecently(c.Room, c.User) {
		pos, member, err := h.cfg.Members.Membership(ctx, c.Room, c.User)
		if err == nil && member {
			return Result{Position: pos, Duplicate: true}, nil
		}
		// A read model that fails must not stop joins: appending again is
		// harmless, membership folds idempotently.
	}
	ev := &events.MemberJoined{Envelope: h.envelope(c.Room, c.User)}
	pos, err := h.append(ctx, ev)
	return Result{Event: ev, Position: pos}, err
}

// LeaveRoom appends a MemberLeft.
func (h *Handler) LeaveRoom(ctx context.Context, c LeaveRoom) (Result, error) {
	if err := validateRoomUser(c.Room, c.User); err != nil {
		return Result{}, err
	}
	ev := &events.MemberLeft{Envelope: h.envelope(c.Room, c.User)}
	pos, err := h.append(ctx, ev)
	if err == nil {
		h.noteLeave(c.Room, c.User)
	}
	return Result{Event: ev, Position: pos}, err
}

func (h *Handler) noteLeave(room, user string) {
	now := h.cfg.Now()
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.leaves) >= 1024 { // prune now and then, not on every leave
		for k, at := range h.leaves {
			if now.Sub(at) > leaveGrace {
				delete(h.leaves, k)
			}
		}
	}
	h.leaves[room+"\x00"+user] = now
}

func (h *Handler) leftRecently(room, user string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	at, ok := h.leaves[room+"\x00"+user]
	return ok && h.cfg.Now().Sub(at) <= leaveGrace
}

// RegisterWebhook appends a WebhookRegistered with a fresh webhook id.
func (h *Handler) RegisterWebhook(ctx context.Context, c RegisterWebhook) (Result, error) {
	if err := c.validate(h.cfg.AllowPrivateWebhooks); err != nil {
		return Result{}, err
	}
	ev := &events.WebhookRegistered{Envelope: h.envelope(c.Room, c.User), WebhookID: "w" + h.cfg.NewID(), URL: c.URL, Secret: c.Secret}
	pos, err := h.append(ctx, ev)
	return Result{Event: ev, Position: pos}, err
}

var b32 = base32.StdEncoding.WithPadding(base32.NoPadding)

// MessageID derives a message id from the idempotency key, so every resend
// of one client message names the same message.
func MessageID(room, user, clientID string) string {
	sum := sha256.Sum256([]byte(room + "\x00" + user + "\x00" + clientID))
	return "m" + b32.EncodeToString(sum[:15])
}

var mention = regexp.MustCompile(`(?:^|[^\w@])@([A-Za-z0-9_.-]{1,64})`)

// Mentions returns the distinct user ids named as @user in text, in order of
// first appearance, at most MaxMentions.
func Mentions(text string) []string {
	var out []string
	for _, m := range mention.FindAllStringSubmatch(text, -1) {
		u := strings.TrimRight(m[1], ".-") // "@bob." ends a sentence
		if u == "" {
			continue
		}
		if !slices.Contains(out, u) {
			out = append(out, u)
		}
		if len(out) == MaxMentions {
			break
		}
	}
	return out
}
