package projections

import (
	"context"
	"errors"
)

// ErrLogChanged: the store's checkpoints belong to a log (topic id) other
// than the one being read: the topic was deleted and created again, so its
// offsets mean something else. The projection must be rebuilt.
var ErrLogChanged = errors.New("the log was recreated (topic id changed): checkpoints belong to the old log; rebuild the projection")

// LogBinder is implemented by stores that remember which log their
// checkpoints belong to. The runtime calls BindLog before reading: the
// first call records topicID, later calls with another id return an error
// wrapping ErrLogChanged. Optional: a store without it is not checked.
//
// A Versioned store that implements it promotes a version bound to another
// log than the active version's without comparing checkpoints (those of the
// old log mean nothing): that is how a projection recovers from a recreated
// log, with a rebuild.
type LogBinder interface {
	BindLog(ctx context.Context, topicID string) error
}

// bindLog checks s against the log's topic id, if s can.
func bindLog(ctx context.Context, s Store, topicID string) error {
	b, ok := s.(LogBinder)
	if !ok || topicID == "" {
		return nil
	}
	return b.BindLog(ctx, topicID)
}
