package redis

import (
	"context"
	"errors"
	"fmt"

	"github.com/rtstack/rtstack/projections"
)

var (
	_ projections.LogBinder = (*Projection)(nil)
	_ projections.LogBinder = (*versionStore)(nil)
)

// BindLog records the log (topic id @ cluster id) the active version's
// checkpoints belong to (key P v<N>:log, set once; a bare topic id there is
// completed with the cluster), or returns a projections.LogMismatch error
// if the version is bound to another one. With no
// active version (Redis lost its data) it binds nothing now: the Apply that
// re-creates the version binds it to topicID. Later Applies through p
// refuse an active version bound to another topic id.
func (p *Projection) BindLog(ctx context.Context, topicID string) error {
	if err := p.bind(ctx, "", topicID); err != nil {
		return err
	}
	p.mu.Lock()
	p.logID = topicID
	p.mu.Unlock()
	return nil
}

// BindLog records the topic id this version is built from.
func (s *versionStore) BindLog(ctx context.Context, topicID string) error {
	return s.p.bind(ctx, s.version, topicID)
}

func (p *Projection) bind(ctx context.Context, version, topicID string) error {
	if topicID == "" {
		return errors.New("redis projection: bind log: empty topic id")
	}
	res, err := p.run(ctx, bindScript, p.cfg.Prefix, version, topicID).StringSlice()
	if err != nil {
		return fmt.Errorf("redis projection: bind log: %w", err)
	}
	if len(res) != 2 {
		return fmt.Errorf("redis projection: bind log: unexpected reply %q", res)
	}
	if ver, bound := res[0], res[1]; ver != "" && bound != topicID {
		return projections.LogMismatch("redis version "+ver, bound, topicID)
	}
	return nil
}
