package projections

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
)

// ErrLogTruncated: the log lost its tail (a disk failure, a broker restored
// from an older copy, an unclean leader election): a store's checkpoint is
// beyond the end of a partition, so the records appended next get offsets
// the store believes it applied already. Skipping them would lose them
// silently; the projection must be rebuilt from what the log still holds
// (Rebuild promotes such a version over the active one's higher
// checkpoints).
var ErrLogTruncated = errors.New("the log lost its tail: checkpoints are beyond its end")

// Truncation is one partition whose checkpoint is beyond the log's end.
type Truncation struct {
	Partition  int32
	Checkpoint int64 // the next offset the store would apply
	End        int64 // the offset the log gives its next record
}

// TruncatedError names every partition found truncated. It wraps
// ErrLogTruncated.
type TruncatedError struct {
	Projection string
	Parts      []Truncation
}

func (e *TruncatedError) Error() string {
	parts := make([]string, len(e.Parts))
	for i, t := range e.Parts {
		parts[i] = fmt.Sprintf("partition %d: checkpoint %d, log end %d", t.Partition, t.Checkpoint, t.End)
	}
	return fmt.Sprintf("%v (%s); new records would reuse offsets already applied",
		ErrLogTruncated, strings.Join(parts, "; "))
}

func (e *TruncatedError) Unwrap() error { return ErrLogTruncated }

// truncations lists the partitions whose checkpoint in cps is beyond their
// end in ends, by partition; partitions absent from ends are not judged.
func truncations(cps, ends map[int32]int64) []Truncation {
	var out []Truncation
	for _, id := range slices.Sorted(maps.Keys(cps)) {
		if end, ok := ends[id]; ok && cps[id] > end {
			out = append(out, Truncation{Partition: id, Checkpoint: cps[id], End: end})
		}
	}
	return out
}

// truncatedErr returns a *TruncatedError of projection if cps are beyond
// ends anywhere, else nil.
func truncatedErr(projection string, cps, ends map[int32]int64) error {
	if ts := truncations(cps, ends); len(ts) > 0 {
		return &TruncatedError{Projection: projection, Parts: ts}
	}
	return nil
}
