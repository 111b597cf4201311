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

// BindLog records the log (topic id @ cluster id) the active version's
// checkpoints belong to, or returns a projections.LogMismatch error if it
// holds another one.
func (p *Projection) BindLog(ctx context.Context, logID string) error {
	err := p.withActive(ctx, func(schema string) error { return bindLog(ctx, p, schema, logID) })
	if err == nil {
		p.logID.Store(&logID)
	}
	return err
}

// BindLog records the log this version is built from.
func (v *versionStore) BindLog(ctx context.Context, logID string) error {
	return bindLog(ctx, v.p, v.schema, logID)
}

// bindLog binds schema to logID in its log table (column topic_id, named
// before clusters were part of the identity; a bare topic id there is
// completed with the cluster).
func bindLog(ctx context.Context, p *Projection, schema, logID string) error {
	err := pgx.BeginFunc(ctx, p.pool, func(tx pgx.Tx) error {
		// The table is part of the layout; IF NOT EXISTS also covers versions
		// created before it was.
		if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS `+schema+`.log (
			one bool PRIMARY KEY DEFAULT true CHECK (one), topic_id text NOT NULL)`); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO `+schema+`.log (topic_id) VALUES ($1)
			ON CONFLICT (one) DO UPDATE SET topic_id = $1 WHERE `+schema+`.log.topic_id = split_part($1, '@', 1)`, logID); err != nil {
			return err
		}
		var bound string
		if err := tx.QueryRow(ctx, `SELECT topic_id FROM `+schema+`.log`).Scan(&bound); err != nil {
			return err
		}
		if bound != logID {
			return projections.LogMismatch("postgres version "+schema, bound, logID)
		}
		return nil
	})
	var mismatch *projections.LogMismatchError
	if err != nil && !errors.As(err, &mismatch) {
		return fmt.Errorf("postgres projection: bind log: %w", err)
	}
	return err
}
