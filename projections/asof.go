package projections

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Cut is the point of the log an as-of version is built up to: an event
// time, or a position per partition. The zero Cut is no cut (a whole
// rebuild).
type Cut struct {
	// Time: each partition is replayed up to (not including) its first
	// record whose event time is after Time. The version is a prefix of
	// every partition, as a log cut at that instant would be; a late event
	// (an event time at or before Time appended after a later one) past the
	// cut is not in it.
	Time time.Time
	// Positions: partition → offset of the last record included (the form
	// of the API's position header). A partition not listed is not
	// replayed: nothing of it is in the version.
	Positions map[int32]int64
}

// ErrNoSuchPartition: a cut names a partition the log does not have; no
// version is created.
var ErrNoSuchPartition = errors.New("no such partition")

// IsZero reports whether c cuts nothing.
func (c Cut) IsZero() bool { return c.Time.IsZero() && c.Positions == nil }

// String renders c the way ParseCut reads it.
func (c Cut) String() string {
	if !c.Time.IsZero() {
		return c.Time.UTC().Format(time.RFC3339Nano)
	}
	parts := make([]string, 0, len(c.Positions))
	for _, p := range slices.Sorted(maps.Keys(c.Positions)) {
		parts = append(parts, strconv.Itoa(int(p))+":"+strconv.FormatInt(c.Positions[p], 10))
	}
	return strings.Join(parts, ",")
}

// ParseCut reads an RFC 3339 time ("2026-12-01T00:00:00Z") or positions
// "P:O,P:O,…" (each partition once, O the offset of the last record to
// include).
func ParseCut(s string) (Cut, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return Cut{}, errors.New("as-of: empty; want an RFC 3339 time or P:O,…")
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return Cut{Time: t}, nil
	}
	if !strings.Contains(s, ":") || strings.Contains(s, "T") {
		return Cut{}, fmt.Errorf("as-of %q: want an RFC 3339 time (2026-12-01T00:00:00Z) or positions P:O,…", s)
	}
	c := Cut{Positions: map[int32]int64{}}
	for _, pair := range strings.Split(s, ",") {
		ps, os, _ := strings.Cut(strings.TrimSpace(pair), ":")
		p, err1 := strconv.ParseInt(ps, 10, 32)
		o, err2 := strconv.ParseInt(os, 10, 64)
		if err1 != nil || err2 != nil || p < 0 || o < 0 {
			return Cut{}, fmt.Errorf("as-of: %q is not PARTITION:OFFSET with non-negative integers", pair)
		}
		if _, dup := c.Positions[int32(p)]; dup {
			return Cut{}, fmt.Errorf("as-of: partition %d given twice", p)
		}
		c.Positions[int32(p)] = o
	}
	return c, nil
}

// limit returns the offset partition is replayed up to (excluded), given
// its end offset when the rebuild began: a time cut is found on the way
// (see applier.cutTime), so it starts at the end.
func (c Cut) limit(partition int32, end int64) int64 {
	if c.Positions == nil {
		return end
	}
	o, ok := c.Positions[partition]
	if !ok {
		return 0
	}
	return min(o+1, end)
}

// VersionInfo describes one version of a projection.
type VersionInfo struct {
	Name string `json:"version"`
	// State: "active"; "building" (a rebuild, or an as-of version not
	// finished yet); "as-of" (finished, read-only); "retired" (replaced by
	// a rebuild, being dropped).
	State string `json:"state"`
	// AsOf is the cut of an as-of version (Cut.String), else "".
	AsOf    string    `json:"as_of,omitempty"`
	Created time.Time `json:"created"`
}

// Snapshots is a Versioned projection that also keeps read-only versions
// as of a point of the log, beside the active one: never promoted, never
// written by the live projector, readable by name until dropped.
type Snapshots interface {
	Versioned
	// BeginAsOf creates a new, empty version recorded as being built as of
	// cut, and returns a Store that writes only into it.
	BeginAsOf(ctx context.Context, cut string) (Store, string, error)
	// Seal marks an as-of version finished; it is read-only from then on.
	Seal(ctx context.Context, version string) error
	// Versions lists every version, oldest first.
	Versions(ctx context.Context) ([]VersionInfo, error)
	// Drop deletes a version that is not the active one; an error wrapping
	// view.ErrUnknownVersion when there is none of that name.
	Drop(ctx context.Context, version string) error
	// DigestVersion is Digest of one version.
	DigestVersion(ctx context.Context, version string) (string, error)
}
