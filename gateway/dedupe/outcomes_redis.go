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
}

var (
	_ commands.Outcomes = (*Outcomes)(nil)
	_ commands.Claimer  = (*Outcomes)(nil)
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
	return &Outcomes{rdb: rdb, prefix: prefix + "outcome:", ttl: ttl}
}

// Get returns the position stored for key; ok is false when there is none
// (never stored, or expired).
func (o *Outcomes) Get(ctx context.Context, key string) (events.Position, bool, error) {
	v, err := o.rdb.Get(ctx, o.prefix+key).Result()
	if errors.Is(err, redis.Nil) {
		return events.Position{}, false, nil
	}
	if err != nil {
		return events.Position{}, false, fmt.Errorf("get outcome: %w", err)
	}
	if strings.HasPrefix(v, claimPrefix) {
		return events.Position{}, false, nil // being appended; no outcome yet
	}
	pos, err := parse(v)
	if err != nil {
		return events.Position{}, false, fmt.Errorf("outcome %q: %w", v, err)
	}
	return pos, true, nil
}

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
// replaces a claim.
func (o *Outcomes) Put(ctx context.Context, key string, pos events.Position) error {
	if err := putScript.Run(ctx, o.rdb, []string{o.prefix + key}, pos.String(), o.ttl.Milliseconds(), claimPrefix).Err(); err != nil {
		return fmt.Errorf("put outcome: %w", err)
	}
	return nil
}

// Claim takes key for one append (SET NX) for ttl; ok is false when the key
// has a claim or an outcome already. The token identifies the claim to
// Release.
func (o *Outcomes) Claim(ctx context.Context, key string, ttl time.Duration) (token string, ok bool, err error) {
	token = claimPrefix + rand.Text()
	ok, err = o.rdb.SetNX(ctx, o.prefix+key, token, ttl).Result()
	if err != nil {
		return "", false, fmt.Errorf("claim outcome: %w", err)
	}
	return token, ok, nil
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
