package worker

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/rtstack/rtstack/internal/testsvc"
)

// TestCheckUsesIndexOnceTableGrows: the completion check made on a
// connection while the table was small must still use the primary key once
// the table is large. A plan cached per connection (a generic plan made
// at 20 rows) stays a sequential scan: each check then read the whole
// table, 30 ms at 40,000 rows, and the worker slowed round after round.
func TestCheckUsesIndexOnceTableGrows(t *testing.T) {
	url := testsvc.Postgres(t)
	ctx := context.Background()
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	cfg.MaxConns = 1 // every query on the connection whose plans are cached
	p, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	s := doneStore{pool: p}
	if err := s.ensure(ctx); err != nil {
		t.Fatal(err)
	}
	exec := func(sql string) {
		t.Helper()
		if _, err := p.Exec(ctx, sql); err != nil {
			t.Fatal(err)
		}
	}
	exec(`INSERT INTO rtstack_tasks.done (task_id, kind, attempts) SELECT md5(i::text), 'webhook', 1 FROM generate_series(1, 20) i`)
	exec(`ANALYZE rtstack_tasks.done`)
	check := func() {
		t.Helper()
		reqs := make([]doneReq, 30)
		for i := range reqs {
			reqs[i].id = fmt.Sprintf("absent-%d", i)
		}
		if _, err := s.checkMany(ctx, reqs); err != nil {
			t.Fatal(err)
		}
	}
	for range 7 { // past the 5 custom plans after which a generic one is cached
		check()
	}
	exec(`INSERT INTO rtstack_tasks.done (task_id, kind, attempts) SELECT md5(i::text), 'webhook', 1 FROM generate_series(21, 40000) i`)
	const late = 5
	for range late {
		check()
	}
	p.Close() // a backend that exits reports its table statistics

	admin, err := pgxpool.New(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	var inserted, idx int64
	testsvc.Eventually(t, 10*time.Second, "the statistics of the closed connection", func() bool {
		err := admin.QueryRow(ctx, `SELECT n_tup_ins, coalesce(idx_scan, 0) FROM pg_stat_user_tables
			WHERE schemaname = 'rtstack_tasks' AND relname = 'done'`).Scan(&inserted, &idx)
		return err == nil && inserted >= 40000
	})
	if idx < late {
		t.Errorf("%d index scans of %s; the %d checks after the table grew should each use the primary key", idx, DoneTable, late)
	}
}
