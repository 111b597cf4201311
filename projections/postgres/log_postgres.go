package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/rtstack/rtstack/projections"
)

var (
	_ projections.LogBinder = (*Projection)(nil)
	_ projections.LogBinder = (*versionStore)(nil)
)

// BindLog records the topic id the active version's checkpoints belong to,
// or returns an error wrapping projections.ErrLogChanged if it holds
// another one.
func (p *Projection) BindLog(ctx context.Context, topicID string) error {
	return p.withActive(ctx, func(schema string) error { return bindLog(ctx, p, schema, topicID) })
}

// BindLog records the topic id this version is built from.
func (v *versionStore) BindLog(ctx context.Context, topicID string) error {
	return bindLog(ctx, v.p, v.schema, topicID)
}

func bindLog(ctx context.Context, p *Projection, schema, topicID string) error {
	err := pgx.BeginFunc(ctx, p.pool, func(tx pgx.Tx) error {
		// The table is part of the layout; IF NOT EXISTS also covers versions
		// created before it was.
		if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS `+schema+`.log (
			one bool PRIMARY KEY DEFAULT true CHECK (one), topic_id text NOT NULL)`); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO `+schema+`.log (topic_id) VALUES ($1) ON CONFLICT DO NOTHING`, topicID); err != nil {
			return err
		}
		var bound string
		if err := tx.QueryRow(ctx, `SELECT topic_id FROM `+schema+`.log`).Scan(&bound); err != nil {
			return err
		}
		if bound != topicID {
			return fmt.Errorf("%w: %s was built from topic id %s, the log is now %s", projections.ErrLogChanged, schema, bound, topicID)
		}
		return nil
	})
	if err != nil && !errors.Is(err, projections.ErrLogChanged) {
		return fmt.Errorf("postgres projection: bind log: %w", err)
	}
	return err
}
