package projections

import (
	"context"
	"errors"

	"github.com/rtstack/rtstack/events"
)

// ErrStoreReset: the store lost its state (a Redis without persistence
// restarted, say) and re-created it empty, so the position the runtime
// holds for a partition means nothing any more. Apply returns an error
// wrapping it instead of applying; the live runtime then reloads
// Checkpoints and seeks that partition there (usually offset zero: the log
// is replayed), counting it in rtstack_projection_store_resets_total. A
// rebuild that meets it fails (its version is gone); run it again.
var ErrStoreReset = errors.New("the store lost its state: reload checkpoints and seek again")

// Store is a projection's target. The runtime feeds it the log one
// partition at a time, in order.
type Store interface {
	// Name identifies the projection in logs and metrics ("postgres", "redis").
	Name() string
	// Checkpoints returns, per partition, the offset of the next record to
	// apply. A partition never applied is absent (start at zero).
	Checkpoints(ctx context.Context) (map[int32]int64, error)
	// Apply folds recs (all of one partition, ascending offsets, possibly
	// empty) and sets that partition's checkpoint to next, atomically: after
	// a crash either all of it is visible or none. Records whose offset is
	// below the stored checkpoint must be ignored, so a batch retried after
	// an unknown outcome applies once. An error wrapping ErrStoreReset means
	// nothing was applied and the partition must restart from Checkpoints;
	// any other error is retried with the same batch.
	Apply(ctx context.Context, partition int32, recs []events.Record, next int64) error
}

// Versioned is a projection that can be rebuilt blue/green. The Store it
// embeds is the live one: every Apply and Checkpoints call works on the
// version active at that instant (read under a shared lock), so a swap never
// needs the live projector to stop or re-seek.
type Versioned interface {
	Store
	// Begin creates a new, empty version and returns a Store that writes
	// only into it, with the version's name.
	Begin(ctx context.Context) (Store, string, error)
	// Promote makes version active, atomically, if its checkpoints have
	// reached the active version's on every partition (both are the same
	// pure function of the log, so the rebuilt one may be ahead), then drops
	// the old version. ok is false when it is still behind: catch up more
	// and call again.
	Promote(ctx context.Context, version string) (ok bool, err error)
	// Abandon drops a version that will not be promoted.
	Abandon(ctx context.Context, version string) error
	// Digest is a stable hash of the active version's content: not of
	// version names or checkpoints. Equal digests mean equal state.
	Digest(ctx context.Context) (string, error)
}

// Replacer is a Versioned store that can promote a version without
// comparing its checkpoints with the active version's. Rebuild uses it when
// the active version's checkpoints are beyond the log's end
// (ErrLogTruncated): no version built from what the log holds now could
// catch up with them.
type Replacer interface {
	// Replace makes version active, atomically, whatever its checkpoints,
	// then drops the old version.
	Replace(ctx context.Context, version string) error
}
