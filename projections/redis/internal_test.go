package redis

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/rtstack/rtstack/events"
	"github.com/rtstack/rtstack/internal/testsvc"
	"github.com/rtstack/rtstack/projections"
)

func TestMinuteOf(t *testing.T) {
	for _, tc := range []struct{ ms, want int64 }{
		{0, 0}, {59_999, 0}, {60_000, 60_000}, {1_609_459_261_234, 1_609_459_260_000},
		{-1, -60_000}, {-60_000, -60_000}, {-60_001, -120_000},
	} {
		if got := minuteOf(tc.ms); got != tc.want {
			t.Errorf("minuteOf(%d) = %d, want %d", tc.ms, got, tc.want)
		}
	}
}

func TestReactionMemberUnambiguous(t *testing.T) {
	a := reactionMember("m1", "ann", "x:y")
	b := reactionMember("m1", "ann:x", "y")
	c := reactionMember("m1a", "nn", "x:y")
	if a == b || a == c || b == c {
		t.Errorf("reaction members collide: %q %q %q", a, b, c)
	}
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
		want []string
	}{
		{"no client", Config{}, []string{"no Redis client"}},
		{"odd window", Config{Window: 90 * time.Second}, []string{"no Redis client", "whole number of minutes"}},
		{"negative", Config{Window: -time.Minute, ChunkSize: -1}, []string{"minutes", "chunk size"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			for _, w := range tc.want {
				if err == nil || !strings.Contains(err.Error(), w) {
					t.Errorf("Validate() = %v, want it to mention %q", err, w)
				}
			}
		})
	}
	if _, err := Open(context.Background(), Config{}); err == nil {
		t.Error("Open with no client: no error")
	}
}

// A chunk whose predecessor in the pipeline failed must not run: it would
// move the checkpoint past records that were never applied.
func TestChunkRefusesGap(t *testing.T) {
	rdb, prefix := testsvc.Redis(t)
	ctx := context.Background()
	p, err := Open(ctx, Config{Redis: rdb, Prefix: prefix, ChunkSize: 2})
	if err != nil {
		t.Fatal(err)
	}
	ev := func(off int64, user string) events.Record {
		return events.Record{Position: events.Position{Offset: off}, Event: &events.MemberJoined{Envelope: events.Envelope{Room: "a", User: user}}}
	}
	// The second chunk alone, as if the first had failed: required
	// checkpoint 2, stored 0.
	args := []any{prefix, "", "0", "4", "2", "0", p.partitionEpoch(0), p.freshEpoch()}
	args = appendOp(appendOp(args, ev(2, "cat")), ev(3, "dan"))
	err = p.exec(ctx, [][]any{args})
	if err == nil || !strings.Contains(err.Error(), "gap") {
		t.Fatalf("chunk past a gap: err = %v, want a gap error", err)
	}
	if c, _ := p.Counters(ctx, "a"); c.Members != 0 {
		t.Errorf("chunk past a gap wrote %d members", c.Members)
	}
	if cps, _ := p.Checkpoints(ctx); len(cps) != 0 {
		t.Errorf("chunk past a gap moved checkpoints: %v", cps)
	}
	// The whole batch applies, in two chunks.
	if err := p.Apply(ctx, 0, []events.Record{ev(0, "ann"), ev(1, "bob"), ev(2, "cat"), ev(3, "dan")}, 4); err != nil {
		t.Fatal(err)
	}
	if c, _ := p.Counters(ctx, "a"); c.Members != 4 {
		t.Errorf("members = %d, want 4", c.Members)
	}
}

func TestIsRetryable(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{nil, false},
		{context.Canceled, false},
		{context.DeadlineExceeded, true},
		{io.EOF, true},
		{&net.OpError{Op: "dial", Err: errors.New("connection refused")}, true},
		{errors.New("LOADING Redis is loading the dataset in memory"), true},
		{fmt.Errorf("apply: %w", errors.New("BUSY Redis is busy running a script")), true},
		{errors.New("RTSTACK gap: checkpoint 0 below 2"), false},
		{errors.New("ERR wrong number of arguments"), false},
		{fmt.Errorf("apply: %w", goredis.ErrPoolTimeout), true},
		{errors.New("OOM command not allowed when used memory > 'maxmemory'"), true},
		{errors.New("WRONGTYPE Operation against a key holding the wrong kind of value"), false},
		{fmt.Errorf("apply: %w", projections.ErrLogChanged), false},
	} {
		if got := IsRetryable(tc.err); got != tc.want {
			t.Errorf("IsRetryable(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}

func TestCheckVersion(t *testing.T) {
	for v, ok := range map[string]bool{"v1": true, "v42": true, "": false, "v": false, "1": false, "v1:x": false, "v*": false, "w1": false} {
		if err := checkVersion(v); (err == nil) != ok {
			t.Errorf("checkVersion(%q) = %v, want ok=%v", v, err, ok)
		}
	}
}
