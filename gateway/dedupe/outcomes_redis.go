package dedupe

import (
	"context"
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

var _ commands.Outcomes = (*Outcomes)(nil)

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
	pos, err := parse(v)
	if err != nil {
		return events.Position{}, false, fmt.Errorf("outcome %q: %w", v, err)
	}
	return pos, true, nil
}

// Put stores pos for key unless key already has a position: the first
// append of a message is the one every resend is answered with.
func (o *Outcomes) Put(ctx context.Context, key string, pos events.Position) error {
	if err := o.rdb.SetNX(ctx, o.prefix+key, pos.String(), o.ttl).Err(); err != nil {
		return fmt.Errorf("put outcome: %w", err)
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
