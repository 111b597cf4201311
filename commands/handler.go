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
	"github.com/rtstack/rtstack/internal/retry"
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

// Sealer encrypts a webhook secret before it enters the log, bound to
// context (the webhook id); *keyring.Keyring satisfies it.
type Sealer interface {
	Seal(plaintext, context string) string
}

// Webhooks answers which webhooks a room has, from a read model.
type Webhooks interface {
	WebhookIDs(ctx context.Context, room string) ([]string, error)
}

// Reactions answers which emoji user has on a message, from a read model.
type Reactions interface {
	UserReactions(ctx context.Context, room, messageID, user string) ([]string, error)
}

// MaxReactionsPerUser caps the distinct emoji one user may have on one
// message. The projections fold the same cap, so a reaction past it that
// reached the log anyway (a race within the read model's lag) counts
// nowhere.
const MaxReactionsPerUser = events.MaxReactionsPerUser

// Claimer is an Outcomes that answers and claims in one step, which makes
// check-then-append atomic across connections and gateways: of two sends
// of one client id at once, one claims and appends, the other waits for
// its outcome. Release drops a claim whose append failed.
type Claimer interface {
	// Claim returns the outcome of key if it has one (Done), or claims key
	// for one append for ttl (Token set), or neither while another
	// connection holds the claim.
	Claim(ctx context.Context, key string, ttl time.Duration) (Claim, error)
	Release(ctx context.Context, key, token string) error
}

// BatchClaimer is a Claimer that claims several keys together, in one
// round trip where it can.
type BatchClaimer interface {
	Claimer
	// ClaimAll answers as Claim would for each key, in order; errs[i] is
	// keys[i]'s error.
	ClaimAll(ctx context.Context, keys []string, ttl time.Duration) (claims []Claim, errs []error)
}

// Claim is a Claimer's answer for one key.
type Claim struct {
	Position events.Position // the first append's, when Done
	Done     bool
	Token    string // identifies the caller's claim to Release; "" if not claimed
}

// Claims of idempotency keys: a claim outlives any append (the producer
// gives up sooner); a duplicate polls for the outcome meanwhile, from
// about a round trip up to a few milliseconds apart, until its command's
// deadline or the claim's expiry.
const (
	claimTTL     = 30 * time.Second
	claimPollMin = 500 * time.Microsecond
	claimPollMax = 20 * time.Millisecond
)

// Errors from deciding against the read model.
var (
	ErrNotAuthor      = errors.New("not the author of the message")
	ErrUnknownMessage = errors.New("unknown message")
	// ErrUnknownWebhook: RemoveWebhook of an id the room does not have (or
	// that is not projected yet).
	ErrUnknownWebhook = errors.New("unknown webhook")
	// ErrTooManyWebhooks: the room has MaxWebhooksPerRoom webhooks already.
	ErrTooManyWebhooks = errors.New("too many webhooks")
	// ErrTooManyReactions: the user has MaxReactionsPerUser distinct emoji
	// on the message already.
	ErrTooManyReactions = errors.New("too many reactions")
	// ErrReadModel: a read model needed to decide could not answer; the
	// command may succeed later.
	ErrReadModel = errors.New("read model unavailable")
	// ErrNoSealer: webhooks cannot be registered without a key to seal
	// their secrets (WEBHOOK_SECRET_KEY).
	ErrNoSealer = errors.New("no key to seal webhook secrets")
)

// DefaultMaxWebhooksPerRoom is WEBHOOKS_PER_ROOM's default.
const DefaultMaxWebhooksPerRoom = 10

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
	// Sealer seals webhook secrets; nil refuses every registration with
	// ErrNoSealer (a secret never reaches the log in the clear).
	Sealer Sealer
	// Reactions enforces MaxReactionsPerUser before the append; nil
	// leaves it to the projections' fold.
	Reactions Reactions
	// Webhooks caps registrations and checks removals; nil skips both
	// checks (the projections fold a removal of an unknown id as a no-op).
	Webhooks Webhooks
	// MaxWebhooksPerRoom caps a room's webhooks (WEBHOOKS_PER_ROOM);
	// default DefaultMaxWebhooksPerRoom (10). Checked against Webhooks, so
	// two registrations racing within the projection's lag may both pass.
	MaxWebhooksPerRoom int
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
	if c.MaxWebhooksPerRoom < 1 {
		errs = append(errs, fmt.Errorf("commands: MaxWebhooksPerRoom %d must be at least 1", c.MaxWebhooksPerRoom))
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
	if c.MaxWebhooksPerRoom == 0 {
		c.MaxWebhooksPerRoom = DefaultMaxWebhooksPerRoom
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

func (c SendMessage) decide(ctx context.Context, h *Handler, once bool) (decision, error) {
	if err := c.validate(); err != nil {
		return decision{}, err
	}
	if !c.deduped(h) {
		return c.decision(h, nil), nil
	}
	pos, dup, release, err := h.claim(ctx, c.key(), once)
	if err != nil {
		return decision{}, err
	}
	if dup {
		return c.duplicate(h, pos), nil
	}
	return c.decision(h, release), nil
}

// deduped: the send has a client id and there is a store to remember it in.
func (c SendMessage) deduped(h *Handler) bool { return c.ClientID != "" && h.cfg.Outcomes != nil }

// key is the send's idempotency key.
func (c SendMessage) key() string { return c.Room + "\x00" + c.User + "\x00" + c.ClientID }

func (c SendMessage) messageID(h *Handler) string {
	if c.ClientID == "" {
		return "m" + h.cfg.NewID()
	}
	return MessageID(c.Room, c.User, c.ClientID)
}

// duplicate answers a resend with the first append's position.
func (c SendMessage) duplicate(h *Handler, pos events.Position) decision {
	return decision{res: Result{Position: pos, MessageID: c.messageID(h), Duplicate: true}}
}

// decision is the append of a send that holds its claim (release drops it)
// or needs none.
func (c SendMessage) decision(h *Handler, release func()) decision {
	msgID := c.messageID(h)
	ev := &events.MessageSent{
		Envelope:  h.envelope(c.Room, c.User),
		MessageID: msgID,
		ClientID:  c.ClientID,
		Text:      c.Text,
		Mentions:  Mentions(c.Text),
	}
	d := decision{ev: ev, res: Result{Event: ev, MessageID: msgID}, failed: release}
	if c.deduped(h) {
		key := c.key()
		d.after = func(ctx context.Context, pos events.Position) {
			_ = h.cfg.Outcomes.Put(ctx, key, pos) // best effort, see claim
		}
	}
	return d
}

// claim returns the outcome of key if it has one (dup), or claims key for
// this append: release drops the claim if the append fails. While another
// connection holds the claim it waits for that append's outcome, or with
// once returns errClaimHeld at once. A failing
// dedupe store must not stop chat: then it neither dedupes nor claims, and
// the deterministic message id still makes the projections keep one row.
func (h *Handler) claim(ctx context.Context, key string, once bool) (pos events.Position, dup bool, release func(), err error) {
	cl, canClaim := h.cfg.Outcomes.(Claimer)
	if !canClaim {
		pos, ok, gerr := h.cfg.Outcomes.Get(ctx, key)
		return pos, ok && gerr == nil, nil, nil
	}
	wait := retry.Backoff{Min: claimPollMin, Max: claimPollMax, Jitter: true}
	for {
		c, cerr := cl.Claim(ctx, key, claimTTL)
		pos, dup, release, held := claimed(ctx, cl, key, c, cerr)
		switch {
		case !held:
			return pos, dup, release, nil
		case once:
			return events.Position{}, false, nil, errClaimHeld
		}
		if !wait.Wait(ctx, nil) { // another connection is appending it
			return events.Position{}, false, nil, fmt.Errorf("%w: waiting for a concurrent send of the same client_id: %w", ErrAppend, ctx.Err())
		}
	}
}

// claimed reads a Claimer's answer for key: its outcome (dup), or the claim
// taken (release drops it), or neither (nothing to dedupe against: the
// store failed), or held by another append.
func claimed(ctx context.Context, cl Claimer, key string, c Claim, err error) (pos events.Position, dup bool, release func(), held bool) {
	switch {
	case err != nil:
		return events.Position{}, false, nil, false
	case c.Done:
		return c.Position, true, nil, false
	case c.Token != "":
		return events.Position{}, false, func() { _ = cl.Release(context.WithoutCancel(ctx), key, c.Token) }, false
	}
	return events.Position{}, false, nil, true
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

func (c EditMessage) decide(ctx context.Context, h *Handler, _ bool) (decision, error) {
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

func (c DeleteMessage) decide(ctx context.Context, h *Handler, _ bool) (decision, error) {
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

func (c React) decide(ctx context.Context, h *Handler, _ bool) (decision, error) {
	if err := c.validate(); err != nil {
		return decision{}, err
	}
	if !c.Remove && h.cfg.Reactions != nil {
		have, err := h.cfg.Reactions.UserReactions(ctx, c.Room, c.MessageID, c.User)
		if err != nil {
			return decision{}, fmt.Errorf("%w: reactions on %s: %w", ErrReadModel, c.MessageID, err)
		}
		if !slices.Contains(have, c.Emoji) && len(have) >= MaxReactionsPerUser {
			return decision{}, fmt.Errorf("%w: %d distinct emoji on %s, at most %d", ErrTooManyReactions, len(have), c.MessageID, MaxReactionsPerUser)
		}
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

// RegisterWebhook appends a WebhookRegistered with a fresh webhook id and
// the secret sealed, unless the room has MaxWebhooksPerRoom already.
func (h *Handler) RegisterWebhook(ctx context.Context, c RegisterWebhook) (Result, error) {
	if err := c.validate(h.cfg.AllowPrivateWebhooks); err != nil {
		return Result{}, err
	}
	if h.cfg.Sealer == nil {
		return Result{}, ErrNoSealer
	}
	if h.cfg.Webhooks != nil {
		ids, err := h.cfg.Webhooks.WebhookIDs(ctx, c.Room)
		if err != nil {
			return Result{}, fmt.Errorf("%w: webhooks of %s: %w", ErrReadModel, c.Room, err)
		}
		if len(ids) >= h.cfg.MaxWebhooksPerRoom {
			return Result{}, fmt.Errorf("%w: room %s has %d, at most %d (WEBHOOKS_PER_ROOM)", ErrTooManyWebhooks, c.Room, len(ids), h.cfg.MaxWebhooksPerRoom)
		}
	}
	id := "w" + h.cfg.NewID()
	ev := &events.WebhookRegistered{Envelope: h.envelope(c.Room, c.User), WebhookID: id, URL: c.URL, Secret: h.cfg.Sealer.Seal(c.Secret, id)}
	pos, err := h.append(ctx, ev)
	return Result{Event: ev, Position: pos}, err
}

// RemoveWebhook appends a WebhookRemoved for a webhook the room has.
func (h *Handler) RemoveWebhook(ctx context.Context, c RemoveWebhook) (Result, error) {
	if err := errors.Join(validateRoomUser(c.Room, c.User), validateField("webhook_id", c.WebhookID, 128)); err != nil {
		return Result{}, err
	}
	if h.cfg.Webhooks != nil {
		ids, err := h.cfg.Webhooks.WebhookIDs(ctx, c.Room)
		if err != nil {
			return Result{}, fmt.Errorf("%w: webhooks of %s: %w", ErrReadModel, c.Room, err)
		}
		if !slices.Contains(ids, c.WebhookID) {
			return Result{}, fmt.Errorf("%w: %s in %s", ErrUnknownWebhook, c.WebhookID, c.Room)
		}
	}
	ev := &events.WebhookRemoved{Envelope: h.envelope(c.Room, c.User), WebhookID: c.WebhookID}
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
	if strings.IndexByte(text, '@') < 0 {
		return nil // most messages: skip the expression
	}
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
