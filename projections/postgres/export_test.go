package postgres

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// DigestOf is Digest of any version, for tests comparing two versions.
func (p *Projection) DigestOf(ctx context.Context, schema string) (string, error) {
	h := sha256.New()
	err := pgx.BeginTxFunc(ctx, p.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		for i, q := range digestQueries {
			fmt.Fprintf(h, "table %d\n", i)
			if _, err := tx.Conn().PgConn().CopyTo(ctx, h, "COPY ("+fmt.Sprintf(q, schema)+") TO STDOUT"); err != nil {
				return err
			}
		}
		return nil
	})
	return hex.EncodeToString(h.Sum(nil)), err
}
