package postgres_test

import (
	"context"
	"testing"
	"time"

	"github.com/rtstack/rtstack/projections"
	"github.com/rtstack/rtstack/projections/postgres"
	"github.com/rtstack/rtstack/projections/projectionstest"
)

// TestContract runs the contract every rebuildable store passes over the
// Postgres projection. A place is a database URL.
func TestContract(t *testing.T) {
	projectionstest.Contract(t, projectionstest.Harness{
		Open: func(t testing.TB) (projections.Versioned, string) {
			p, url := open(t)
			return p, url
		},
		OpenAt: func(t testing.TB, url string) projections.Versioned {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			p, err := postgres.Open(ctx, postgres.Config{URL: url, Logger: helperLogger()})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(p.Close)
			return p
		},
		Messages: func(t *testing.T, s projections.Versioned, room string) int {
			t.Helper()
			p := s.(*postgres.Projection)
			ctx := context.Background()
			v, err := p.Active(ctx)
			if err != nil {
				t.Fatal(err)
			}
			var n int
			if err := p.Pool().QueryRow(ctx, "SELECT count(*) FROM "+v+".messages WHERE room = $1", room).Scan(&n); err != nil {
				t.Fatal(err)
			}
			return n
		},
	})
}
