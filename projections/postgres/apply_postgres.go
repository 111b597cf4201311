package postgres

import (
	"context"
	"errors"
	"fmt"
	"sort"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/rtstack/rtstack/events"
	"github.com/rtstack/rtstack/projections"
)

// copyThreshold: batches inserting at least this many messages use COPY;
// smaller ones pipeline per-row INSERTs with the rest of the batch.
const copyThreshold = 32

// versionStore writes into one version, active or not (a rebuild's target).
type versionStore struct {
	p      *Projection
	schema string
}

var _ projections.Store = (*versionStore)(nil)

func (v *versionStore) Name() string { return name }

func (v *versionStore) Checkpoints(ctx context.Context) (map[int32]int64, error) {
	return checkpoints(ctx, v.p.pool, v.schema)
}

func (v *versionStore) Apply(ctx context.Context, partition int32, recs []events.Record, next int64) error {
	return v.p.apply(ctx, v.schema, partition, recs, next)
}

// Checkpoints returns the active version's checkpoints.
func (p *Projection) Checkpoints(ctx context.Context) (map[int32]int64, error) {
	var out map[int32]int64
	err := p.withActive(ctx, func(schema string) error {
		var err error
		out, err = checkpoints(ctx, p.pool, schema)
		return err
	})
	return out, err
}

type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

func checkpoints(ctx context.Context, db querier, schema string) (map[int32]int64, error) {
	rows, err := db.Query(ctx, `SELECT "partition", next_offset FROM `+schema+`.checkpoints`)
	if err != nil {
		return nil, fmt.Errorf("postgres projection: checkpoints of %s: %w", schema, err)
	}
	out := map[int32]int64{}
	var part int32
	var next int64
	_, err = pgx.ForEachRow(rows, []any{&part, &next}, func() error { out[part] = next; return nil })
	if err != nil {
		return nil, fmt.Errorf("postgres projection: checkpoints of %s: %w", schema, err)
	}
	return out, nil
}

// Apply folds recs into the version active at this instant and moves the
// partition's checkpoint to next, in one transaction.
func (p *Projection) Apply(ctx context.Context, partition int32, recs []events.Record, next int64) error {
	return p.apply(ctx, "", partition, recs, next)
}

func (p *Projection) apply(ctx context.Context, schema string, partition int32, recs []events.Record, next int64) error {
	err := p.applyTx(ctx, schema, partition, recs, next, false)
	if isUniqueViolation(err) {
		// A MessageSent repeated a message the table already has: fold
		// again knowing every sent key's row.
		err = p.applyTx(ctx, schema, partition, recs, next, true)
	}
	if err != nil {
		return fmt.Errorf("postgres projection: apply partition %d: %w", partition, err)
	}
	return nil
}

func isUniqueViolation(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "23505"
}

func (p *Projection) applyTx(ctx context.Context, schema string, partition int32, recs []events.Record, next int64, loadSent bool) error {
	tx, err := p.pool.Begin(ctx)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()

	var cp int64
	var bound string
	b := &pgx.Batch{}
	reading := p.logID.Load()
	live := schema == ""
	if !live {
		// A version being built is read by no one yet: its commits need not
		// wait for the WAL flush. A crash loses at most the last commits,
		// rows and checkpoint together (the WAL keeps them in order), and
		// the rebuild applies them again.
		b.Queue("SET LOCAL synchronous_commit = off")
	}
	if live {
		// Shared with every other Apply, exclusive with Promote: the version
		// read next stays active until this transaction ends.
		b.Queue("SELECT pg_advisory_xact_lock_shared($1)", lockKey)
		b.Queue("SELECT version FROM rtstack_control.active WHERE projection = $1", name).QueryRow(func(row pgx.Row) error {
			return row.Scan(&schema)
		})
		if err := tx.SendBatch(ctx, b).Close(); err != nil {
			return fmt.Errorf("active version: %w", err)
		}
		if !versionName.MatchString(schema) {
			return fmt.Errorf("bad active version name %q", schema)
		}
		b = &pgx.Batch{}
	}
	// The row lock serialises two instances that briefly own one partition.
	b.Queue(`INSERT INTO `+schema+`.checkpoints ("partition", next_offset) VALUES ($1, 0) ON CONFLICT DO NOTHING`, partition)
	b.Queue(`SELECT next_offset FROM `+schema+`.checkpoints WHERE "partition" = $1 FOR UPDATE`, partition).QueryRow(func(row pgx.Row) error {
		return row.Scan(&cp)
	})
	if live && reading != nil {
		b.Queue(`SELECT coalesce((SELECT topic_id FROM ` + schema + `.log), '')`).QueryRow(func(row pgx.Row) error {
			return row.Scan(&bound)
		})
	}
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	if live && reading != nil && bound != "" && bound != *reading {
		return projections.LogMismatch("the active version "+schema, bound, *reading)
	}
	i := sort.Search(len(recs), func(i int) bool { return recs[i].Offset >= cp })
	recs = recs[i:]
	if len(recs) == 0 && next <= cp {
		return tx.Commit(ctx)
	}

	b = &pgx.Batch{}
	if len(recs) > 0 {
		keys := refs(recs)
		if loadSent {
			keys = append(keys, sentKeys(recs)...)
		}
		loaded, err := load(ctx, tx, schema, keys)
		if err != nil {
			return err
		}
		present, err := loadReactions(ctx, tx, schema, recs)
		if err != nil {
			return err
		}
		f := foldBatch(recs, loaded, present)
		if len(f.newMsgs) >= copyThreshold {
			if err := copyMessages(ctx, tx, schema, f.newMsgs); err != nil {
				return err
			}
		} else {
			queueMessages(b, schema, f.newMsgs)
		}
		queueWrites(b, schema, f)
	}
	if next > cp {
		b.Queue(`UPDATE `+schema+`.checkpoints SET next_offset = $2 WHERE "partition" = $1`, partition, next)
	}
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return err
	}
	return tx.Commit(ctx)
}

// load reads the rows of keys.
func load(ctx context.Context, tx pgx.Tx, schema string, keys []msgKey) (map[msgKey]*msg, error) {
	out := make(map[msgKey]*msg, len(keys))
	if len(keys) == 0 {
		return out, nil
	}
	rooms, ids := make([]string, len(keys)), make([]string, len(keys))
	for i, k := range keys {
		rooms[i], ids[i] = k.room, k.id
	}
	rows, err := tx.Query(ctx, `SELECT room, message_id, "user", text, ts, "partition", "offset", edited, edited_ts, deleted, deleted_ts, mentions
		FROM `+schema+`.messages WHERE (room, message_id) IN (SELECT * FROM unnest($1::text[], $2::text[]))`, rooms, ids)
	if err != nil {
		return nil, fmt.Errorf("load messages: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		m := &msg{inDB: true}
		if err := rows.Scan(&m.room, &m.id, &m.user, &m.text, &m.ts, &m.partition, &m.offset,
			&m.edited, &m.editedTS, &m.deleted, &m.deletedTS, &m.mentions); err != nil {
			return nil, fmt.Errorf("load messages: %w", err)
		}
		out[msgKey{m.room, m.id}] = m
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("load messages: %w", err)
	}
	return out, nil
}

// loadReactions reads the emoji each (message, user) of recs' reactions
// has in the table, for the per-user cap.
func loadReactions(ctx context.Context, tx pgx.Tx, schema string, recs []events.Record) (map[msgKey]map[string]map[string]bool, error) {
	out := map[msgKey]map[string]map[string]bool{}
	var rooms, ids, users []string
	for _, r := range recs {
		if ev, ok := r.Event.(*events.ReactionAdded); ok {
			rooms, ids, users = append(rooms, clean(ev.Room)), append(ids, clean(ev.MessageID)), append(users, clean(ev.User))
		}
	}
	if len(rooms) == 0 {
		return out, nil
	}
	rows, err := tx.Query(ctx, `SELECT DISTINCT r.room, r.message_id, r."user", r.emoji FROM `+schema+`.reactions r
		JOIN unnest($1::text[], $2::text[], $3::text[]) AS k(room, message_id, "user")
		ON r.room = k.room AND r.message_id = k.message_id AND r."user" = k."user"`, rooms, ids, users)
	if err != nil {
		return nil, fmt.Errorf("load reactions: %w", err)
	}
	var room, id, user, emoji string
	_, err = pgx.ForEachRow(rows, []any{&room, &id, &user, &emoji}, func() error {
		mk := msgKey{room, id}
		if out[mk] == nil {
			out[mk] = map[string]map[string]bool{}
		}
		if out[mk][user] == nil {
			out[mk][user] = map[string]bool{}
		}
		out[mk][user][emoji] = true
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("load reactions: %w", err)
	}
	return out, nil
}

var messageColumns = []string{"room", "message_id", "user", "text", "ts", "partition", "offset",
	"edited", "edited_ts", "deleted", "deleted_ts", "mentions"}

func (m *msg) row() []any {
	mentions := m.mentions
	if mentions == nil {
		mentions = []string{}
	}
	return []any{m.room, m.id, m.user, m.text, m.ts, m.partition, m.offset,
		m.edited, m.editedTS, m.deleted, m.deletedTS, mentions}
}

func queueMessages(b *pgx.Batch, schema string, ms []*msg) {
	for _, m := range ms {
		b.Queue(`INSERT INTO `+schema+`.messages (room, message_id, "user", text, ts, "partition", "offset", edited, edited_ts, deleted, deleted_ts, mentions)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)`, m.row()...)
	}
}

// queueWrites queues every write but new messages: set-based statements
// over arrays, so one round trip whatever the batch size.
func queueWrites(b *pgx.Batch, s string, f *fold) {
	queueMessageUpdates(b, s, f)
	queueReactions(b, s, f)
	queueMembers(b, s, f)
	queueRoomsAndWebhooks(b, s, f)
}

// queueMessageUpdates writes the edits and deletes the fold left on rows,
// and drops the reactions of deleted messages.
func queueMessageUpdates(b *pgx.Batch, s string, f *fold) {
	var up struct {
		rooms, ids, texts   []string
		edited, deleted     []bool
		editedTS, deletedTS []int64
		delRooms, delIDs    []string
	}
	for _, m := range f.msgs {
		if !m.dirty {
			continue
		}
		up.rooms, up.ids, up.texts = append(up.rooms, m.room), append(up.ids, m.id), append(up.texts, m.text)
		up.edited, up.editedTS = append(up.edited, m.edited), append(up.editedTS, m.editedTS)
		up.deleted, up.deletedTS = append(up.deleted, m.deleted), append(up.deletedTS, m.deletedTS)
		if m.deletedHere {
			up.delRooms, up.delIDs = append(up.delRooms, m.room), append(up.delIDs, m.id)
		}
	}
	if len(up.rooms) > 0 {
		b.Queue(`UPDATE `+s+`.messages m SET text = u.text, edited = u.edited, edited_ts = u.edited_ts,
				deleted = u.deleted, deleted_ts = u.deleted_ts,
				mentions = CASE WHEN u.deleted THEN '{}' ELSE m.mentions END
			FROM unnest($1::text[], $2::text[], $3::text[], $4::bool[], $5::bigint[], $6::bool[], $7::bigint[])
				AS u(room, message_id, text, edited, edited_ts, deleted, deleted_ts)
			WHERE m.room = u.room AND m.message_id = u.message_id`,
			up.rooms, up.ids, up.texts, up.edited, up.editedTS, up.deleted, up.deletedTS)
	}
	if len(up.delRooms) > 0 {
		b.Queue(`DELETE FROM `+s+`.reactions r USING unnest($1::text[], $2::text[]) AS d(room, message_id)
			WHERE r.room = d.room AND r.message_id = d.message_id`, up.delRooms, up.delIDs)
	}

}

// queueReactions writes the reactions' net change: removals first, then
// what is present at the end.
func queueReactions(b *pgx.Batch, s string, f *fold) {
	var rdel, rins struct {
		rooms, ids, emojis, users []string
		ts, offsets               []int64
		parts                     []int32
	}
	for k, op := range f.reactions {
		if op.removed {
			rdel.rooms, rdel.ids, rdel.emojis, rdel.users = append(rdel.rooms, k.room), append(rdel.ids, k.id), append(rdel.emojis, k.emoji), append(rdel.users, k.user)
		}
		if op.present {
			rins.rooms, rins.ids, rins.emojis, rins.users = append(rins.rooms, k.room), append(rins.ids, k.id), append(rins.emojis, k.emoji), append(rins.users, k.user)
			rins.ts, rins.parts, rins.offsets = append(rins.ts, op.ts), append(rins.parts, op.partition), append(rins.offsets, op.offset)
		}
	}
	if len(rdel.rooms) > 0 {
		b.Queue(`DELETE FROM `+s+`.reactions r USING unnest($1::text[], $2::text[], $3::text[], $4::text[]) AS d(room, message_id, emoji, "user")
			WHERE r.room = d.room AND r.message_id = d.message_id AND r.emoji = d.emoji AND r."user" = d."user"`,
			rdel.rooms, rdel.ids, rdel.emojis, rdel.users)
	}
	if len(rins.rooms) > 0 {
		b.Queue(`INSERT INTO `+s+`.reactions (room, message_id, emoji, "user", ts, "partition", "offset")
			SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[], $6::int[], $7::bigint[])
			ON CONFLICT DO NOTHING`, rins.rooms, rins.ids, rins.emojis, rins.users, rins.ts, rins.parts, rins.offsets)
	}
}

// queueMembers writes the memberships' net change.
func queueMembers(b *pgx.Batch, s string, f *fold) {
	var mdel, mins struct {
		rooms, users []string
		ts, offsets  []int64
		parts        []int32
	}
	for k, op := range f.members {
		if op.removed {
			mdel.rooms, mdel.users = append(mdel.rooms, k.room), append(mdel.users, k.user)
		}
		if op.present {
			mins.rooms, mins.users = append(mins.rooms, k.room), append(mins.users, k.user)
			mins.ts, mins.parts, mins.offsets = append(mins.ts, op.ts), append(mins.parts, op.partition), append(mins.offsets, op.offset)
		}
	}
	if len(mdel.rooms) > 0 {
		b.Queue(`DELETE FROM `+s+`.members m USING unnest($1::text[], $2::text[]) AS d(room, "user")
			WHERE m.room = d.room AND m."user" = d."user"`, mdel.rooms, mdel.users)
	}
	if len(mins.rooms) > 0 {
		b.Queue(`INSERT INTO `+s+`.members (room, "user", since, "partition", "offset")
			SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::int[], $5::bigint[])
			ON CONFLICT DO NOTHING`, mins.rooms, mins.users, mins.ts, mins.parts, mins.offsets)
	}
}

// queueRoomsAndWebhooks writes new rooms and the webhooks registered or
// removed.
func queueRoomsAndWebhooks(b *pgx.Batch, s string, f *fold) {
	if len(f.roomOrder) > 0 {
		n := len(f.roomOrder)
		ts, parts, offs := make([]int64, n), make([]int32, n), make([]int64, n)
		for i, r := range f.roomOrder {
			ts[i], parts[i], offs[i] = f.rooms[r].ts, f.rooms[r].partition, f.rooms[r].offset
		}
		b.Queue(`INSERT INTO `+s+`.rooms (room, created, "partition", "offset")
			SELECT * FROM unnest($1::text[], $2::bigint[], $3::int[], $4::bigint[]) ON CONFLICT DO NOTHING`,
			f.roomOrder, ts, parts, offs)
	}
	if len(f.hooksRemoved) > 0 {
		rooms, ids := make([]string, len(f.hooksRemoved)), make([]string, len(f.hooksRemoved))
		for i, k := range f.hooksRemoved {
			rooms[i], ids[i] = k.room, k.id
		}
		b.Queue(`DELETE FROM `+s+`.webhooks w USING unnest($1::text[], $2::text[]) AS d(room, webhook_id)
			WHERE w.room = d.room AND w.webhook_id = d.webhook_id`, rooms, ids)
	}
	for _, w := range f.webhooks {
		b.Queue(`INSERT INTO `+s+`.webhooks (room, webhook_id, url, created, "user", "partition", "offset")
			VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING`, w.room, w.id, w.url, w.ts, w.user, w.partition, w.offset)
	}
}
