package worker

import (
	"context"
	"fmt"
	"time"

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

// doneBatcher groups the completion checks and records of the deliveries in
// progress into one query each (a group commit): under load one round trip
// and one commit serve many tasks, and a lone task waits for nothing.
//
// A batch's query is bounded by timeout (Config.Timeout), so every request
// gets its reply: a check or record waits at most for a query in flight and
// then its own, without a deadline (a timer) of its own per task.
type doneBatcher struct {
	store   doneStore
	timeout time.Duration
	checks  chan doneReq
	marks   chan doneReq
}

type doneReq struct {
	id, kind string
	attempts int
	reply    chan doneReply // buffered, 1
}

type doneReply struct {
	done bool
	err  error
}

// maxDoneBatch bounds the ids of one query.
const maxDoneBatch = 256

// doneParallel is how many queries of each kind (checks, records) may be
// in flight at once. A lone query per kind made the record's commit the
// worker's limit: each batch waited for the one before it to be flushed.
const doneParallel = 2

func newDoneBatcher(s doneStore, timeout time.Duration) *doneBatcher {
	return &doneBatcher{store: s, timeout: timeout, checks: make(chan doneReq), marks: make(chan doneReq)}
}

// run serves requests until ctx ends; its caller waits for it.
func (b *doneBatcher) run(ctx context.Context, reqs chan doneReq, do func(context.Context, []doneReq) (map[string]bool, error)) {
	batch := make([]doneReq, 0, maxDoneBatch)
	for {
		select {
		case <-ctx.Done():
			return
		case r := <-reqs:
			batch = append(batch[:0], r)
		}
	fill:
		for len(batch) < maxDoneBatch {
			select {
			case r := <-reqs:
				batch = append(batch, r)
			default:
				break fill
			}
		}
		qctx, cancel := context.WithTimeout(ctx, b.timeout)
		res, err := do(qctx, batch)
		cancel()
		for _, r := range batch {
			r.reply <- doneReply{done: res[r.id], err: err}
		}
	}
}

// ask hands r to a batcher and waits for its reply. The batchers outlive
// the deliveries (Run stops them last) and bound each query, so the reply
// always comes.
func (b *doneBatcher) ask(reqs chan doneReq, r doneReq) (bool, error) {
	r.reply = make(chan doneReply, 1)
	reqs <- r
	rep := <-r.reply
	return rep.done, rep.err
}

func (b *doneBatcher) isDone(id string) (bool, error) {
	return b.ask(b.checks, doneReq{id: id})
}

func (b *doneBatcher) markDone(id, kind string, attempts int) error {
	_, err := b.ask(b.marks, doneReq{id: id, kind: kind, attempts: attempts})
	return err
}

// checkQuery finds which of $1 are recorded done.
const checkQuery = `SELECT task_id FROM rtstack_tasks.done WHERE task_id = ANY($1)`

// checkMany returns which of the ids are recorded done.
func (s doneStore) checkMany(ctx context.Context, reqs []doneReq) (map[string]bool, error) {
	ids := make([]string, len(reqs))
	for i, r := range reqs {
		ids[i] = r.id
	}
	// Planned at each execution (an unnamed statement), not once per
	// connection: a generic plan made while the table was small is a
	// sequential scan, kept for the connection's life as the table grows.
	rows, err := s.pool.Query(ctx, checkQuery, pgx.QueryExecModeCacheDescribe, ids)
	if err != nil {
		return nil, fmt.Errorf("check tasks done: %w", err)
	}
	done, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("check tasks done: %w", err)
	}
	out := make(map[string]bool, len(done))
	for _, id := range done {
		out[id] = true
	}
	return out, nil
}

// markMany records the tasks done in one statement; a task recorded before
// keeps its first record.
func (s doneStore) markMany(ctx context.Context, reqs []doneReq) (map[string]bool, error) {
	ids, kinds, attempts := make([]string, len(reqs)), make([]string, len(reqs)), make([]int32, len(reqs))
	for i, r := range reqs {
		ids[i], kinds[i], attempts[i] = r.id, r.kind, int32(r.attempts)
	}
	_, err := s.pool.Exec(ctx, `INSERT INTO rtstack_tasks.done (task_id, kind, attempts)
		SELECT * FROM unnest($1::text[], $2::text[], $3::int[]) ON CONFLICT (task_id) DO NOTHING`, ids, kinds, attempts)
	if err != nil {
		return nil, fmt.Errorf("record tasks done: %w", err)
	}
	return nil, nil
}
