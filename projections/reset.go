package projections

import (
	"context"
	"errors"
	"time"
)

// LossDetector is implemented by stores that can lose their state while
// the runtime runs and notice it in Apply (a Redis without persistence:
// Apply answers ErrStoreReset). When DetectsLoss is true the live runtime
// also applies an empty batch (no records, next = its position) to each
// owned partition that applied nothing for LagInterval, so a loss is
// noticed, and the partition replayed, without waiting for new records.
type LossDetector interface {
	DetectsLoss() bool
}

func detectsLoss(s Store) bool {
	d, ok := s.(LossDetector)
	return ok && d.DetectsLoss()
}

// probe applies an empty batch to an idle partition that applied
// something already; it returns the store's error if it wraps
// ErrStoreReset, else nil (other errors are left to the next real batch,
// which retries them).
func (a *applier) probe(ctx context.Context) error {
	next := a.next.Load()
	if next == 0 {
		return nil // nothing applied, nothing to lose
	}
	actx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	err := a.store.Apply(actx, a.id, nil, next)
	if errors.Is(err, ErrStoreReset) {
		a.m.resets.Inc()
		return err
	}
	if err != nil && ctx.Err() == nil {
		a.log.Debug("idle probe failed", "partition", a.id, "err", err)
	}
	return nil
}
