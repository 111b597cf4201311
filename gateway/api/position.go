package api

import (
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/rtstack/rtstack/events"
	"github.com/rtstack/rtstack/gateway/clienterr"
)

// PositionHeader carries, on every read response, the position of the
// projection the answer came from: "P:O" per partition, comma-separated,
// ascending partitions, where O is the offset of the last record the
// projection had applied when the read began (the answer reflects at least
// that). Partitions it never applied are left out. Passing any of these
// pairs as ?after= is satisfied at once.
const PositionHeader = "X-Rtstack-Position"

// FormatPosition renders checkpoints (offset of the next record per
// partition) as the header's value.
func FormatPosition(next map[int32]int64) string {
	var b strings.Builder
	for _, p := range slices.Sorted(maps.Keys(next)) {
		if next[p] <= 0 {
			continue
		}
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "%d:%d", p, next[p]-1)
	}
	return b.String()
}

// ParsePosition parses "PARTITION:OFFSET" (the partition and offset of an
// ack or a delivered event).
func ParsePosition(s string) (events.Position, error) {
	ps, os, ok := strings.Cut(s, ":")
	if !ok {
		return events.Position{}, errors.New("want PARTITION:OFFSET, e.g. 0:17")
	}
	p, err := strconv.ParseInt(ps, 10, 32)
	if err != nil || p < 0 {
		return events.Position{}, fmt.Errorf("partition %q is not a non-negative integer", ps)
	}
	o, err := strconv.ParseInt(os, 10, 64)
	if err != nil || o < 0 {
		return events.Position{}, fmt.Errorf("offset %q is not a non-negative integer", os)
	}
	return events.Position{Partition: int32(p), Offset: o}, nil
}

// position handles ?after= and sets the position header. It waits, at most
// AfterWait, until the projection has applied the record at after (its
// checkpoint for the partition is above the offset), then sets the header
// and returns true. It answers 400 for a bad after=, 409 with the current
// position when the wait ran out, 503 when the position cannot be read.
func (s *server) position(w http.ResponseWriter, r *http.Request, cp Checkpoints) bool {
	raw, want := r.URL.Query().Get("after"), r.URL.Query().Has("after")
	var after events.Position
	if want {
		var err error
		if after, err = ParsePosition(raw); err != nil {
			writeError(w, clienterr.Invalid, "after: "+err.Error())
			return false
		}
		if cp == nil {
			writeError(w, clienterr.Invalid, "after: this endpoint's projection reports no position")
			return false
		}
	}
	if cp == nil {
		return true
	}
	ctx := r.Context()
	deadline := time.Now().Add(s.cfg.AfterWait)
	var tick *time.Ticker
	for {
		next, err := cp.Checkpoints(ctx)
		if err != nil {
			if ctx.Err() == nil {
				s.log.Warn("api: read projection position", "path", r.URL.Path, "err", err)
				writeError(w, clienterr.Unavailable, "projection position unavailable")
			}
			return false
		}
		if !want || next[after.Partition] > after.Offset {
			if tick != nil {
				s.metrics.waits.WithLabelValues("ok").Inc()
			}
			w.Header().Set(PositionHeader, FormatPosition(next))
			return true
		}
		if !time.Now().Before(deadline) {
			s.metrics.waits.WithLabelValues("timeout").Inc()
			pos := FormatPosition(next)
			w.Header().Set(PositionHeader, pos)
			clienterr.WriteHTTP(w, clienterr.NotReached,
				fmt.Sprintf("projection has not reached %s within %v; retry later", after, s.cfg.AfterWait),
				map[string]any{"position": pos})
			return false
		}
		if tick == nil {
			tick = time.NewTicker(s.cfg.PollInterval)
			defer tick.Stop()
		}
		select {
		case <-ctx.Done():
			return false
		case <-tick.C:
		}
	}
}
