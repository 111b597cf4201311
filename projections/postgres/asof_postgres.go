package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/rtstack/rtstack/projections"
	"github.com/rtstack/rtstack/projections/view"
)

var _ projections.Snapshots = (*Projection)(nil)

// BeginAsOf creates a new, empty version recorded as built as of cut;
// see projections.Snapshots.
func (p *Projection) BeginAsOf(ctx context.Context, cut string) (projections.Store, string, error) {
	if cut == "" {
		return nil, "", errors.New("postgres projection: as-of version without a cut")
	}
	return p.begin(ctx, cut)
}

// Seal marks an as-of version finished. Promote refuses it, and the live
// projector only ever writes the active version, so it stays as built.
func (p *Projection) Seal(ctx context.Context, version string) error {
	if !versionName.MatchString(version) {
		return fmt.Errorf("postgres projection: bad version name %q", version)
	}
	if err := addReadIndex(ctx, p.pool, version); err != nil {
		return err
	}
	tag, err := p.pool.Exec(ctx, `UPDATE rtstack_control.versions SET state = 'as-of'
		WHERE version = $1 AND projection = $2 AND state = 'building' AND as_of <> ''`, version, name)
	if err != nil {
		return fmt.Errorf("postgres projection: seal %s: %w", version, err)
	}
	if tag.RowsAffected() != 1 {
		return fmt.Errorf("postgres projection: seal %s: not an as-of version being built", version)
	}
	return nil
}

// Versions lists the versions, oldest first.
func (p *Projection) Versions(ctx context.Context) ([]projections.VersionInfo, error) {
	rows, err := p.pool.Query(ctx, `SELECT version, state, as_of, created_at FROM rtstack_control.versions
		WHERE projection = $1 ORDER BY created_at, version`, name)
	if err != nil {
		return nil, fmt.Errorf("postgres projection: versions: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (projections.VersionInfo, error) {
		var v projections.VersionInfo
		err := row.Scan(&v.Name, &v.State, &v.AsOf, &v.Created)
		return v, err
	})
	if err != nil {
		return nil, fmt.Errorf("postgres projection: versions: %w", err)
	}
	return out, nil
}

// Drop deletes a version that is not the active one (an as-of version, or
// a rebuild's that is not needed any more).
func (p *Projection) Drop(ctx context.Context, version string) error {
	return pgx.BeginFunc(ctx, p.pool, func(tx pgx.Tx) error {
		// Exclusive, as Promote: the active version cannot change meanwhile.
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", lockKey); err != nil {
			return fmt.Errorf("postgres projection: drop lock: %w", err)
		}
		var state string
		err := tx.QueryRow(ctx, "SELECT state FROM rtstack_control.versions WHERE version = $1 AND projection = $2", version, name).Scan(&state)
		if errors.Is(err, pgx.ErrNoRows) || err == nil && state == "retired" {
			return fmt.Errorf("postgres projection: drop %s: %w", version, view.ErrUnknownVersion)
		}
		if err != nil {
			return fmt.Errorf("postgres projection: drop %s: %w", version, err)
		}
		if state == "active" {
			return fmt.Errorf("postgres projection: drop %s: it is the active version", version)
		}
		return dropVersion(ctx, tx, version)
	})
}

// withVersion runs fn on version, or on the active version when version is
// "". A version that does not exist (or is being dropped) is an error
// wrapping view.ErrUnknownVersion.
func (p *Projection) withVersion(ctx context.Context, version string, fn func(schema string) error) error {
	if version == "" {
		return p.withActive(ctx, fn)
	}
	var ok bool
	if versionName.MatchString(version) {
		err := p.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM rtstack_control.versions
			WHERE version = $1 AND projection = $2 AND state <> 'retired')`, version, name).Scan(&ok)
		if err != nil {
			return fmt.Errorf("version %s: %w", version, err)
		}
	}
	if !ok {
		return fmt.Errorf("version %q: %w", version, view.ErrUnknownVersion)
	}
	err := fn(version)
	if isVersionGone(err) {
		return fmt.Errorf("version %q: %w", version, view.ErrUnknownVersion)
	}
	return err
}
