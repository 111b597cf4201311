package presence_test

import (
	"context"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/rtstack/rtstack/internal/testsvc"
)

// TestRedisOutageHeals: a gateway cut off from Redis for longer than TTL
// loses its users (the others sweep them and announce it); when Redis is
// back its heartbeat registers them again and announces that too.
func TestRedisOutageHeals(t *testing.T) {
	rdb, prefix := setup(t)
	ctx := context.Background()
	px := testsvc.Proxy(t, testsvc.RedisAddr)
	cut := redis.NewClient(&redis.Options{Addr: px.Addr(), MaxRetries: -1})
	t.Cleanup(func() { _ = cut.Close() })

	a := start(t, newTracker(t, rdb, prefix, "a"))
	b := start(t, newTracker(t, cut, prefix, "b"))
	must(t, a.Join(ctx, "r", "alice", "a1"))
	a.expect(t, "r", "alice")
	must(t, b.Join(ctx, "r", "bob", "b1"))
	a.expect(t, "r", "alice", "bob")

	px.Cut()
	a.expect(t, "r", "alice") // swept by a after TTL
	online(t, a.Tracker, "r", "alice")

	px.Restore()
	a.expect(t, "r", "alice", "bob") // b's heartbeat put bob back
	online(t, a.Tracker, "r", "alice", "bob")
	// b resubscribed and learned the room's list again.
	b.until(t, "r", "alice", "bob")
}
