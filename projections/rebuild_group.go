package projections

import (
	"context"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
)

// RebuildGroupPrefix + the projection's name is the consumer group a
// running rebuild commits its position to, so kafka-consumer-groups, Burrow
// or a Kafka UI show how far it has to go. The rebuild reads its partitions
// directly (no member joins the group) and deletes the group when it ends:
// a finished rebuild leaves nothing that looks like a stuck consumer.
const RebuildGroupPrefix = "rtstack-rebuild-"

// rebuildCommitTimeout bounds one progress commit and the group's deletion.
const rebuildCommitTimeout = 5 * time.Second

// commitProgress commits each partition's replayed position (its next
// offset: the store committed everything before it) to the rebuild's group,
// in the background. A commit still in flight makes it skip this one.
func (r *rebuild) commitProgress(ctx context.Context) {
	if r.meta == nil || !r.committing.CompareAndSwap(false, true) {
		return
	}
	offsets := kadm.Offsets{}
	for id, a := range r.appliers {
		offsets.Add(kadm.Offset{Topic: r.cfg.Topic, Partition: int32(id), At: a.next.Load(), LeaderEpoch: -1})
	}
	r.wg.Go(func() {
		defer r.committing.Store(false)
		cctx, cancel := context.WithTimeout(ctx, rebuildCommitTimeout)
		defer cancel()
		resp, err := kadm.NewClient(r.meta).CommitOffsets(cctx, r.group(), offsets)
		if err == nil {
			err = resp.Error()
		}
		if err != nil && ctx.Err() == nil {
			r.log.Debug("rebuild progress not committed to its group", "group", r.group(), "err", err)
		}
	})
}

// deleteGroup removes the rebuild's group once it ended (best effort).
func (r *rebuild) deleteGroup(ctx context.Context) {
	if r.meta == nil {
		return
	}
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), rebuildCommitTimeout)
	defer cancel()
	resp, err := kadm.NewClient(r.meta).DeleteGroup(dctx, r.group())
	if err == nil {
		err = resp.Err
	}
	if err != nil {
		r.log.Debug("rebuild group not deleted", "group", r.group(), "err", err)
	}
}

func (r *rebuild) group() string { return RebuildGroupPrefix + r.name }
