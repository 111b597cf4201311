package redis_test

import (
	"sync"
	"testing"

	goredis "github.com/redis/go-redis/v9"

	"github.com/rtstack/rtstack/events"
	"github.com/rtstack/rtstack/internal/testsvc"
	"github.com/rtstack/rtstack/projections"
	"github.com/rtstack/rtstack/projections/projectionstest"
	"github.com/rtstack/rtstack/projections/redis"
)

// TestContract runs the contract every rebuildable store passes over the
// Redis projection. A place is a key prefix.
func TestContract(t *testing.T) {
	type conn struct {
		rdb    *goredis.Client
		prefix string
	}
	var conns sync.Map // *redis.Projection → conn, for Lose
	projectionstest.Contract(t, projectionstest.Harness{
		Open: func(t testing.TB) (projections.Versioned, string) {
			p, rdb, prefix := open(t)
			conns.Store(p, conn{rdb, prefix})
			return p, prefix
		},
		OpenAt: func(t testing.TB, prefix string) projections.Versioned {
			rdb := goredis.NewClient(&goredis.Options{Addr: testsvc.RedisAddr})
			t.Cleanup(func() { _ = rdb.Close() })
			return openWith(t, rdb, prefix, func(c *redis.Config) { c.ChunkSize = 300 })
		},
		Messages: func(t *testing.T, s projections.Versioned, room string) int {
			t.Helper()
			return int(counters(t, s.(*redis.Projection), room).Total)
		},
		Verify: func(t *testing.T, s projections.Versioned, evs []events.Event) {
			rooms := map[string]bool{}
			for _, ev := range evs {
				rooms[ev.Env().Room] = true
			}
			checkModel(t, s.(*redis.Projection), evs, len(rooms))
		},
		Lose: func(t *testing.T, s projections.Versioned) {
			c, _ := conns.Load(s)
			wipe(t, c.(conn).rdb, c.(conn).prefix)
		},
	})
}
