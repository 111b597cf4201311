package postgres

import (
	"context"
	"errors"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/rtstack/rtstack/projections"
)

var (
	_ projections.Classifier = (*Projection)(nil)
	_ projections.Classifier = (*versionStore)(nil)
)

// Retryable implements projections.Classifier with isRetryable.
func (p *Projection) Retryable(err error) bool { return isRetryable(err) }

// Retryable implements projections.Classifier with isRetryable.
func (v *versionStore) Retryable(err error) bool { return isRetryable(err) }

// isRetryable is the Postgres classifier. An error that never reached the
// server (network, pool, timeout) is worth retrying; a server error is
// worth retrying only when its SQLSTATE class says the server or the
// transaction failed rather than the data: 08 connection, 40 transaction
// rollback (serialization, deadlock), 53 insufficient resources, 55 object
// not in prerequisite state (a lock), 57 operator intervention (shutdown,
// cancel), 58 system error, XX internal error. Anything else (22 data
// exception, 23 integrity, 42 a missing table …) fails again on retry.
func isRetryable(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) {
		return false
	}
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		return true
	}
	if len(pgErr.Code) < 2 {
		return true
	}
	switch pgErr.Code[:2] {
	case "08", "40", "53", "55", "57", "58", "XX":
		return true
	}
	return false
}
