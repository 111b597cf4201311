package worker

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// DoneTable records finished tasks. It lives in its own schema, apart from
// the projections', so no rebuild ever touches it.
const DoneTable = "rtstack_tasks.done"

// doneStore is the completion record in Postgres.
type doneStore struct{ pool *pgxpool.Pool }

// ensure creates the schema and table if missing. Concurrent workers
// serialise on an advisory lock: CREATE … IF NOT EXISTS alone races on the
// catalog.
func (s doneStore) ensure(ctx context.Context) error {
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtext('rtstack_tasks.done'))`); err != nil {
			return fmt.Errorf("lock task schema: %w", err)
		}
		_, err := tx.Exec(ctx, `
			CREATE SCHEMA IF NOT EXISTS rtstack_tasks;
			CREATE TABLE IF NOT EXISTS rtstack_tasks.done (
				task_id  text PRIMARY KEY,
				kind     text NOT NULL,
				attempts int NOT NULL,
				done_at  timestamptz NOT NULL DEFAULT now()
			)`)
		if err != nil {
			return fmt.Errorf("create %s: %w", DoneTable, err)
		}
		return nil
	})
}

func (s doneStore) isDone(ctx context.Context, id string) (bool, error) {
	var one int
	err := s.pool.QueryRow(ctx, `SELECT 1 FROM rtstack_tasks.done WHERE task_id = $1`, id).Scan(&one)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("check task %s: %w", id, err)
	}
	return true, nil
}

// markDone records id; recording it again keeps the first record.
func (s doneStore) markDone(ctx context.Context, id, kind string, attempts int) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO rtstack_tasks.done (task_id, kind, attempts) VALUES ($1, $2, $3)
		ON CONFLICT (task_id) DO NOTHING`, id, kind, attempts)
	if err != nil {
		return fmt.Errorf("record task %s done: %w", id, err)
	}
	return nil
}
