package postgres

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/rtstack/rtstack/events"
	"github.com/rtstack/rtstack/projections/view"
)

// History limits.
const (
	DefaultHistoryLimit = 50
	MaxHistoryLimit     = 1000
)

// withActive runs fn on the active version, again if that version was
// dropped under it by a swap (a read never fails because of a rebuild).
func (p *Projection) withActive(ctx context.Context, fn func(schema string) error) error {
	var err error
	for range 3 {
		var schema string
		schema, err = p.Active(ctx)
		if err != nil {
			return err
		}
		err = fn(schema)
		if !isVersionGone(err) {
			return err
		}
	}
	return err
}

func isVersionGone(err error) bool {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		return false
	}
	switch pgErr.Code {
	case "42P01", "3F000": // undefined_table, invalid_schema_name
		return true
	case "XX000": // "could not open relation with OID": dropped while waiting for its lock
		return true
	}
	return false
}

// History returns up to limit messages of room, oldest first: the newest
// ones, or those before the message before (a message id) when it is set;
// none if before is unknown. Deleted messages are included with empty text.
// limit ≤ 0 means DefaultHistoryLimit; it is capped at MaxHistoryLimit.
func (p *Projection) History(ctx context.Context, room string, limit int, before string) ([]view.Message, error) {
	return p.HistoryAt(ctx, "", room, limit, before)
}

// HistoryAt is History of one version ("" = the active one); an unknown
// version is an error wrapping view.ErrUnknownVersion.
func (p *Projection) HistoryAt(ctx context.Context, version, room string, limit int, before string) ([]view.Message, error) {
	if limit <= 0 {
		limit = DefaultHistoryLimit
	}
	limit = min(limit, MaxHistoryLimit)
	var out []view.Message
	err := p.withVersion(ctx, version, func(s string) error {
		out = out[:0]
		q := `SELECT message_id, "user", text, ts, "partition", "offset", edited, deleted, mentions
			FROM ` + s + `.messages WHERE room = $1`
		args := []any{room, limit}
		if before != "" {
			q += ` AND "offset" < (SELECT "offset" FROM ` + s + `.messages WHERE room = $1 AND message_id = $3)`
			args = append(args, before)
		}
		q += ` ORDER BY "offset" DESC LIMIT $2`
		rows, err := p.pool.Query(ctx, q, args...)
		if err != nil {
			return err
		}
		var m view.Message
		_, err = pgx.ForEachRow(rows, []any{&m.MessageID, &m.User, &m.Text, &m.TS, &m.Partition, &m.Offset, &m.Edited, &m.Deleted, &m.Mentions},
			func() error {
				m.Room = room
				if len(m.Mentions) == 0 {
					m.Mentions = nil
				}
				out = append(out, m)
				m = view.Message{}
				return nil
			})
		if err != nil || len(out) == 0 {
			return err
		}
		slices.Reverse(out)
		ids := make([]string, len(out))
		idx := make(map[string]int, len(out))
		for i, m := range out {
			ids[i], idx[m.MessageID] = m.MessageID, i
		}
		rows, err = p.pool.Query(ctx, `SELECT message_id, emoji, "user" FROM `+s+`.reactions
			WHERE room = $1 AND message_id = ANY($2) ORDER BY message_id, emoji COLLATE "C", "user" COLLATE "C"`, room, ids)
		if err != nil {
			return err
		}
		var id, emoji, user string
		_, err = pgx.ForEachRow(rows, []any{&id, &emoji, &user}, func() error {
			m := &out[idx[id]]
			if m.Reactions == nil {
				m.Reactions = map[string][]string{}
			}
			m.Reactions[emoji] = append(m.Reactions[emoji], user)
			return nil
		})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("postgres projection: history of %s: %w", room, err)
	}
	return out, nil
}

// Author returns who sent messageID in room; found is false when the
// message is unknown. It satisfies commands.Authors.
func (p *Projection) Author(ctx context.Context, room, messageID string) (user string, found bool, err error) {
	err = p.withActive(ctx, func(s string) error {
		err := p.pool.QueryRow(ctx, `SELECT "user" FROM `+s+`.messages WHERE room = $1 AND message_id = $2`, room, messageID).Scan(&user)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		found = err == nil
		return err
	})
	if err != nil {
		return "", false, fmt.Errorf("postgres projection: author of %s/%s: %w", room, messageID, err)
	}
	return user, found, nil
}

// Members returns the members of room, sorted.
func (p *Projection) Members(ctx context.Context, room string) ([]string, error) {
	var out []string
	err := p.withActive(ctx, func(s string) error {
		rows, err := p.pool.Query(ctx, `SELECT "user" FROM `+s+`.members WHERE room = $1 ORDER BY "user" COLLATE "C"`, room)
		if err != nil {
			return err
		}
		out, err = pgx.CollectRows(rows, pgx.RowTo[string])
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("postgres projection: members of %s: %w", room, err)
	}
	return out, nil
}

// Membership reports whether user is a member of room and the position of
// the MemberJoined that made them one (satisfies commands.Members).
func (p *Projection) Membership(ctx context.Context, room, user string) (events.Position, bool, error) {
	var pos events.Position
	found := false
	err := p.withActive(ctx, func(s string) error {
		err := p.pool.QueryRow(ctx, `SELECT "partition", "offset" FROM `+s+`.members WHERE room = $1 AND "user" = $2`, room, user).
			Scan(&pos.Partition, &pos.Offset)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		found = err == nil
		return err
	})
	if err != nil {
		return events.Position{}, false, fmt.Errorf("postgres projection: membership of %s in %s: %w", user, room, err)
	}
	return pos, found, nil
}

// Webhook is a registered webhook (the secret stays in the log, for the
// reactor).
type Webhook struct {
	ID      string `json:"webhook_id"`
	Room    string `json:"room"`
	URL     string `json:"url"`
	User    string `json:"user"`
	Created int64  `json:"created"`
}

// Webhooks returns the webhooks of room in registration order.
func (p *Projection) Webhooks(ctx context.Context, room string) ([]Webhook, error) {
	var out []Webhook
	err := p.withActive(ctx, func(s string) error {
		out = out[:0]
		rows, err := p.pool.Query(ctx, `SELECT webhook_id, url, "user", created FROM `+s+`.webhooks WHERE room = $1 ORDER BY "offset"`, room)
		if err != nil {
			return err
		}
		var w Webhook
		_, err = pgx.ForEachRow(rows, []any{&w.ID, &w.URL, &w.User, &w.Created}, func() error {
			w.Room = room
			out = append(out, w)
			return nil
		})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("postgres projection: webhooks of %s: %w", room, err)
	}
	return out, nil
}

// digestQueries dump each table in a canonical order (byte order of the
// keys), every column but version names and checkpoints.
var digestQueries = []string{
	`SELECT room, message_id, "user", text, ts, "partition", "offset", edited, edited_ts, deleted, deleted_ts, mentions
		FROM %s.messages ORDER BY room COLLATE "C", message_id COLLATE "C"`,
	`SELECT room, message_id, emoji, "user", ts, "partition", "offset"
		FROM %s.reactions ORDER BY room COLLATE "C", message_id COLLATE "C", emoji COLLATE "C", "user" COLLATE "C"`,
	`SELECT room, "user", since, "partition", "offset" FROM %s.members ORDER BY room COLLATE "C", "user" COLLATE "C"`,
	`SELECT room, created, "partition", "offset" FROM %s.rooms ORDER BY room COLLATE "C"`,
	`SELECT room, webhook_id, url, created, "user", "partition", "offset"
		FROM %s.webhooks ORDER BY room COLLATE "C", webhook_id COLLATE "C"`,
}

// Digest is the sha256 (hex) of the active version's content, dumped table
// by table in a canonical order from one snapshot.
func (p *Projection) Digest(ctx context.Context) (string, error) {
	return p.DigestVersion(ctx, "")
}

// DigestVersion is Digest of one version ("" = the active one).
func (p *Projection) DigestVersion(ctx context.Context, version string) (string, error) {
	var sum string
	err := p.withVersion(ctx, version, func(s string) error {
		h := sha256.New()
		err := pgx.BeginTxFunc(ctx, p.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
			for i, q := range digestQueries {
				fmt.Fprintf(h, "table %d\n", i)
				if _, err := tx.Conn().PgConn().CopyTo(ctx, h, "COPY ("+fmt.Sprintf(q, s)+") TO STDOUT"); err != nil {
					return err
				}
			}
			return nil
		})
		sum = hex.EncodeToString(h.Sum(nil))
		return err
	})
	if err != nil {
		return "", fmt.Errorf("postgres projection: digest: %w", err)
	}
	return sum, nil
}

// WebhookIDs returns the ids of room's webhooks (satisfies
// commands.Webhooks).
func (p *Projection) WebhookIDs(ctx context.Context, room string) ([]string, error) {
	hooks, err := p.Webhooks(ctx, room)
	if err != nil {
		return nil, err
	}
	ids := make([]string, len(hooks))
	for i, h := range hooks {
		ids[i] = h.ID
	}
	return ids, nil
}

// UserReactions returns the emoji user has on a message of room
// (satisfies commands.Reactions).
func (p *Projection) UserReactions(ctx context.Context, room, messageID, user string) ([]string, error) {
	var out []string
	err := p.withActive(ctx, func(s string) error {
		out = out[:0]
		rows, err := p.pool.Query(ctx, `SELECT emoji FROM `+s+`.reactions WHERE room = $1 AND message_id = $2 AND "user" = $3`, room, messageID, user)
		if err != nil {
			return err
		}
		var e string
		_, err = pgx.ForEachRow(rows, []any{&e}, func() error {
			out = append(out, e)
			return nil
		})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("postgres projection: reactions of %s on %s: %w", user, messageID, err)
	}
	return out, nil
}
