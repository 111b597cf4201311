package kafkatest

import (
	"encoding/binary"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// TruncatePartition makes the log under dataDir (an embedded broker's
// DATA_DIR, the broker stopped) lose the tail of topic's partition part:
// every record batch that does not end below keep is cut off, as a disk
// failure or a restore from an older copy would. It returns the
// partition's new end offset (keep, or less when a batch straddles keep).
//
// It knows the embedded broker's layout: DATA_DIR/kafka/partitions/
// TOPIC-P/BASE.dat segments of Kafka RecordBatches (base offset, int64 at
// byte 0; length of the rest, int32 at byte 8; last offset delta, int32 at
// byte 23), each beside a BASE.idx of 15 bytes per batch. The broker
// replays the segments on start when they no longer match its snapshot.
func TruncatePartition(t testing.TB, dataDir, topic string, part int32, keep int64) int64 {
	t.Helper()
	dir := filepath.Join(dataDir, "kafka", "partitions", fmt.Sprintf("%s-%d", url.PathEscape(topic), part))
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatalf("truncate partition: %v", err)
	}
	var bases []int64
	for _, e := range entries {
		if b, ok := strings.CutSuffix(e.Name(), ".dat"); ok {
			if n, err := strconv.ParseInt(b, 10, 64); err == nil {
				bases = append(bases, n)
			}
		}
	}
	slices.Sort(bases)
	var end int64
	for _, base := range bases {
		seg := filepath.Join(dir, fmt.Sprintf("%d.dat", base))
		data, err := os.ReadFile(seg) //nolint:gosec // G304: a segment under the test's own data directory
		if err != nil {
			t.Fatal(err)
		}
		size, batches, last := keptPrefix(data, keep)
		if batches > 0 {
			end = last
		}
		if err := os.Truncate(seg, int64(size)); err != nil {
			t.Fatal(err)
		}
		idx := filepath.Join(dir, fmt.Sprintf("%d.idx", base))
		if err := os.Truncate(idx, int64(batches*15)); err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
	}
	return end
}

// keptPrefix walks the record batches of a segment and returns the bytes
// and count of the leading batches wholly below keep, and the offset after
// the last of them.
func keptPrefix(data []byte, keep int64) (size, batches int, end int64) {
	for len(data)-size >= 27 {
		b := data[size:]
		base := int64(binary.BigEndian.Uint64(b[0:8]))
		n := 12 + int(binary.BigEndian.Uint32(b[8:12]))
		next := base + int64(binary.BigEndian.Uint32(b[23:27])) + 1
		if n > len(b) || next > keep {
			break
		}
		size += n
		batches++
		end = next
	}
	return size, batches, end
}
