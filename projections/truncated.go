package projections

import (
	"errors"
	"fmt"

	"github.com/rtstack/rtstack/infra/kafka"
)

// ErrLogTruncated: the log lost its tail (a disk failure, a broker restored
// from an older copy, an unclean leader election): a store's checkpoint is
// beyond the end of a partition, so the records appended next get offsets
// the store believes it applied already. Skipping them would lose them
// silently; the projection must be rebuilt from what the log still holds
// (Rebuild promotes such a version over the active one's higher
// checkpoints).
var ErrLogTruncated = errors.New("the log lost its tail: checkpoints are beyond its end")

// TruncatedError names every partition found truncated. It wraps
// ErrLogTruncated.
type TruncatedError struct {
	Projection string
	Parts      []kafka.Truncation // Position is the checkpoint
}

func (e *TruncatedError) Error() string {
	return fmt.Sprintf("%v (%s); new records would reuse offsets already applied",
		ErrLogTruncated, kafka.FormatTruncations(e.Parts))
}

func (e *TruncatedError) Unwrap() error { return ErrLogTruncated }

// truncatedErr returns a *TruncatedError of projection if cps are beyond
// ends anywhere, else nil.
func truncatedErr(projection string, cps, ends map[int32]int64) error {
	if ts := kafka.Truncations(cps, ends); len(ts) > 0 {
		return &TruncatedError{Projection: projection, Parts: ts}
	}
	return nil
}
