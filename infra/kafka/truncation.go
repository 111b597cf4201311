package kafka

import (
	"fmt"
	"maps"
	"slices"
	"strings"
)

// Truncation is one partition whose consumer position (a projection's
// checkpoint, a group's committed offset) is beyond the log's end: the log
// lost its tail (a disk failure, a broker restored from an older copy, an
// unclean leader election), and the records appended next get offsets the
// consumer believes it handled already.
type Truncation struct {
	Partition int32
	Position  int64 // the next offset the consumer would handle
	End       int64 // the offset the log gives its next record
}

func (t Truncation) String() string {
	return fmt.Sprintf("partition %d: position %d, log end %d", t.Partition, t.Position, t.End)
}

// Truncations lists, by partition, where positions are beyond ends;
// partitions absent from ends are not judged.
func Truncations(positions, ends map[int32]int64) []Truncation {
	var out []Truncation
	for _, id := range slices.Sorted(maps.Keys(positions)) {
		if end, ok := ends[id]; ok && positions[id] > end {
			out = append(out, Truncation{Partition: id, Position: positions[id], End: end})
		}
	}
	return out
}

// FormatTruncations joins ts for an error message.
func FormatTruncations(ts []Truncation) string {
	parts := make([]string, len(ts))
	for i, t := range ts {
		parts[i] = t.String()
	}
	return strings.Join(parts, "; ")
}
