package dedupe

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/rtstack/rtstack/commands"
	"github.com/rtstack/rtstack/events"
)

// DefaultTTL is how long an outcome is remembered when New is given 0.
const DefaultTTL = 24 * time.Hour

// Outcomes remembers positions in Redis under prefix+"outcome:"+key, each
// for ttl. Safe for concurrent use.
type Outcomes struct {
	rdb    *redis.Client
	prefix string
	ttl    time.Duration
	pipe   *pipeline // Claim and Put, batched across concurrent sends
}

var (
	_ commands.Outcomes     = (*Outcomes)(nil)
	_ commands.Claimer      = (*Outcomes)(nil)
	_ commands.BatchClaimer = (*Outcomes)(nil)
)

// claimPrefix marks a key whose message is being appended: the value is
// claimPrefix + the claimer's token, replaced by the position once the
// append succeeded.
const claimPrefix = "claim:"

// New returns Outcomes in rdb under prefix (e.g. "rtstack:"), kept for ttl
// (0: DefaultTTL). The caller closes rdb.
func New(rdb *redis.Client, prefix string, ttl time.Duration) *Outcomes {
	if ttl <= 0 {
		ttl = DefaultTTL
	}
	return &Outcomes{rdb: rdb, prefix: prefix + "outcome:", ttl: ttl, pipe: &pipeline{rdb: rdb}}
}

// Get returns the position stored for key; ok is false when there is none
// (never stored, expired, or claimed and not appended yet).
func (o *Outcomes) Get(ctx context.Context, key string) (events.Position, bool, error) {
	v, err := o.rdb.Get(ctx, o.prefix+key).Result()
	if errors.Is(err, redis.Nil) {
		return events.Position{}, false, nil
	}
	if err != nil {
		return events.Position{}, false, fmt.Errorf("get outcome: %w", err)
	}
	c, err := decode(v)
	return c.Position, c.Done, err
}

// decode reads a stored value: a claim (Done false) or a position.
func decode(v string) (commands.Claim, error) {
	if strings.HasPrefix(v, claimPrefix) {
		return commands.Claim{}, nil // being appended; no outcome yet
	}
	pos, err := parse(v)
	if err != nil {
		return commands.Claim{}, fmt.Errorf("outcome %q: %w", v, err)
	}
	return commands.Claim{Position: pos, Done: true}, nil
}

// claimScript returns the value stored (an outcome or another's claim), or
// stores the caller's claim and returns nil: the check and the claim in
// one round trip.
var claimScript = redis.NewScript(`
local v = redis.call('GET', KEYS[1])
if v then return v end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return false`)

// putScript stores a position unless one is there: over nothing or over a
// claim, never over the first outcome.
var putScript = redis.NewScript(`
local v = redis.call('GET', KEYS[1])
if v and string.sub(v, 1, #ARGV[3]) ~= ARGV[3] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1`)

// releaseScript deletes a claim only if it is still the caller's.
var releaseScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`)

// Put stores pos for key unless key already has a position: the first
// append of a message is the one every resend is answered with. It
// replaces a claim. It shares a round trip with concurrent Claims and Puts.
func (o *Outcomes) Put(ctx context.Context, key string, pos events.Position) error {
	if _, err := o.pipe.run(ctx, putScript, []string{o.prefix + key}, pos.String(), o.ttl.Milliseconds(), claimPrefix); err != nil {
		return fmt.Errorf("put outcome: %w", err)
	}
	return nil
}

// Claim returns key's outcome, or another's claim on it, or takes it for
// one append for ttl, in one script that shares a round trip with
// concurrent Claims and Puts.
func (o *Outcomes) Claim(ctx context.Context, key string, ttl time.Duration) (commands.Claim, error) {
	cs, errs := o.ClaimAll(ctx, []string{key}, ttl)
	return cs[0], errs[0]
}

// ClaimAll answers as Claim for each key, in order, queued together so
// they share round trips (one, unless the batch bound splits them).
func (o *Outcomes) ClaimAll(ctx context.Context, keys []string, ttl time.Duration) ([]commands.Claim, []error) {
	calls := make([]*call, len(keys))
	tokens := make([]string, len(keys))
	for i, k := range keys {
		tokens[i] = claimPrefix + rand.Text()
		calls[i] = &call{script: claimScript, keys: []string{o.prefix + k}, args: []any{tokens[i], ttl.Milliseconds()}, done: make(chan struct{})}
	}
	cs, errs := make([]commands.Claim, len(keys)), make([]error, len(keys))
	if err := o.pipe.runAll(ctx, calls); err != nil {
		for i := range errs {
			errs[i] = fmt.Errorf("claim outcome: %w", err)
		}
		return cs, errs
	}
	for i, c := range calls {
		cs[i], errs[i] = claimReply(c.cmd, tokens[i])
	}
	return cs, errs
}

func claimReply(cmd *redis.Cmd, token string) (commands.Claim, error) {
	v, err := cmd.Result()
	if errors.Is(err, redis.Nil) {
		return commands.Claim{Token: token}, nil
	}
	if err != nil {
		return commands.Claim{}, fmt.Errorf("claim outcome: %w", err)
	}
	s, ok := v.(string)
	if !ok {
		return commands.Claim{}, fmt.Errorf("claim outcome: reply %T", v)
	}
	return decode(s)
}

// Release drops the claim of token on key (its append failed), so a
// waiting or later resend may append.
func (o *Outcomes) Release(ctx context.Context, key, token string) error {
	if err := releaseScript.Run(ctx, o.rdb, []string{o.prefix + key}, token).Err(); err != nil && !errors.Is(err, redis.Nil) {
		return fmt.Errorf("release claim: %w", err)
	}
	return nil
}

func parse(s string) (events.Position, error) {
	ps, os, ok := strings.Cut(s, ":")
	if !ok {
		return events.Position{}, errors.New("want PARTITION:OFFSET")
	}
	p, err := strconv.ParseInt(ps, 10, 32)
	if err != nil {
		return events.Position{}, fmt.Errorf("partition: %w", err)
	}
	off, err := strconv.ParseInt(os, 10, 64)
	if err != nil {
		return events.Position{}, fmt.Errorf("offset: %w", err)
	}
	return events.Position{Partition: int32(p), Offset: off}, nil
}
