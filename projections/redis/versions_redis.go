package redis

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/rtstack/rtstack/events"
	"github.com/rtstack/rtstack/projections"
	"github.com/rtstack/rtstack/projections/view"
)

// versionStore writes into one version only, whichever is active.
type versionStore struct {
	p       *Projection
	version string

	filterOnce sync.Once
	filter     *idFilter // the message ids written through it (see applyBuilt)
	folds      sync.Pool // of *fold, reset: one per chunk being folded
}

// fold returns an empty fold for a chunk of s's version.
func (s *versionStore) fold() *fold {
	if f, ok := s.folds.Get().(*fold); ok {
		return f
	}
	return newFold(s.p.cfg.Prefix+s.version+":", s.p.span)
}

// release resets f and keeps it for the next chunk.
func (s *versionStore) release(f *fold) {
	f.reset()
	s.folds.Put(f)
}

// ids returns the filter of the message ids written through s, made on
// first use.
func (s *versionStore) ids() *idFilter {
	s.filterOnce.Do(func() { s.filter = newIDFilter(idFilterBits) })
	return s.filter
}

func (s *versionStore) Name() string { return "redis" }

func (s *versionStore) Checkpoints(ctx context.Context) (map[int32]int64, error) {
	return s.p.checkpoints(ctx, s.version)
}

func (s *versionStore) Apply(ctx context.Context, partition int32, recs []events.Record, next int64) error {
	if err := checkNext(recs, next); err != nil {
		return err
	}
	return s.p.applyBuilt(ctx, s, partition, recs, next)
}

// Begin creates a new, empty version ("v<N>", N one more than any version
// this prefix ever had) and returns a Store writing only into it.
func (p *Projection) Begin(ctx context.Context) (projections.Store, string, error) {
	return p.begin(ctx, "")
}

func (p *Projection) begin(ctx context.Context, asOf string) (projections.Store, string, error) {
	v, err := p.run(ctx, beginScript, p.cfg.Prefix, asOf, time.Now().UnixMilli()).Text()
	if err != nil {
		return nil, "", fmt.Errorf("redis projection: begin version: %w", err)
	}
	return &versionStore{p: p, version: v}, v, nil
}

// Promote makes version active if its checkpoints are at or past the active
// version's on every partition, in one script, so a live Apply lands wholly
// in the old version or wholly in the new one. It then deletes the old
// version's keys in bounded batches; reads already use the new version.
func (p *Projection) Promote(ctx context.Context, version string) (bool, error) {
	return p.promote(ctx, version, "0")
}

var _ projections.Replacer = (*Projection)(nil)

// Replace makes version active without comparing checkpoints (the active
// version's are beyond the log's end), then drops the old version.
func (p *Projection) Replace(ctx context.Context, version string) error {
	ok, err := p.promote(ctx, version, "1")
	if err == nil && !ok {
		err = fmt.Errorf("redis projection: replace by %s refused", version)
	}
	return err
}

func (p *Projection) promote(ctx context.Context, version, force string) (bool, error) {
	if err := checkVersion(version); err != nil {
		return false, err
	}
	res, err := p.run(ctx, promoteScript, p.cfg.Prefix, version, force).StringSlice()
	if err != nil {
		return false, fmt.Errorf("redis projection: promote %s: %w", version, err)
	}
	if len(res) != 2 {
		return false, fmt.Errorf("redis projection: promote %s: unexpected reply %q", version, res)
	}
	if res[0] != "1" {
		return false, nil
	}
	p.notify(ctx, view.BoardChange{All: true}) // every board may differ in the new version
	if old := res[1]; old != "" {
		p.cfg.Logger.Info("redis projection version promoted", "version", version, "old_version", old)
		if err := p.drop(ctx, old); err != nil {
			// The flip stands; Open finishes the drop next time.
			return true, err
		}
	}
	return true, nil
}

// Abandon drops a version that will not be promoted. The active version
// cannot be abandoned.
func (p *Projection) Abandon(ctx context.Context, version string) error {
	if err := checkVersion(version); err != nil {
		return err
	}
	if err := p.run(ctx, abandonScript, p.cfg.Prefix, version).Err(); err != nil {
		return fmt.Errorf("redis projection: abandon %s: %w", version, err)
	}
	return p.drop(ctx, version)
}

// drop deletes a version marked for dropping, SCAN + UNLINK in batches of
// at most 1000 keys, then forgets it.
func (p *Projection) drop(ctx context.Context, version string) error {
	if err := checkVersion(version); err != nil {
		return err
	}
	match := globEscape(p.cfg.Prefix+version+":") + "*"
	var cursor uint64
	deleted := 0
	for {
		keys, next, err := p.rdb.Scan(ctx, cursor, match, 1000).Result()
		if err != nil {
			return fmt.Errorf("redis projection: drop %s: %w", version, err)
		}
		if len(keys) > 0 {
			if err := p.rdb.Unlink(ctx, keys...).Err(); err != nil {
				return fmt.Errorf("redis projection: drop %s: %w", version, err)
			}
			deleted += len(keys)
		}
		if cursor = next; cursor == 0 {
			break
		}
	}
	pipe := p.rdb.TxPipeline()
	pipe.HDel(ctx, p.cfg.Prefix+"asof", version)
	pipe.HDel(ctx, p.cfg.Prefix+"created", version)
	pipe.SRem(ctx, p.cfg.Prefix+"sealed", version)
	pipe.SRem(ctx, p.cfg.Prefix+"dropping", version)
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("redis projection: drop %s: %w", version, err)
	}
	p.cfg.Logger.Info("redis projection version dropped", "version", version, "keys", deleted)
	return nil
}

// ActiveVersion returns the name of the active version.
func (p *Projection) ActiveVersion(ctx context.Context) (string, error) {
	v, err := p.rdb.Get(ctx, p.cfg.Prefix+"active").Result()
	if err != nil {
		return "", fmt.Errorf("redis projection: active version: %w", err)
	}
	return v, nil
}

// Ready reports whether Redis answers and the projection has an active
// version (a check for /readyz).
func (p *Projection) Ready(ctx context.Context) error {
	_, err := p.ActiveVersion(ctx)
	return err
}

// checkVersion accepts the names Begin hands out: "v" and a number.
func checkVersion(v string) error {
	if len(v) < 2 || v[0] != 'v' || strings.Trim(v[1:], "0123456789") != "" {
		return fmt.Errorf("redis projection: bad version name %q", v)
	}
	return nil
}

// globEscape escapes the SCAN MATCH pattern characters of s.
func globEscape(s string) string {
	var b strings.Builder
	for _, r := range s {
		if strings.ContainsRune(`*?[]\`, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}
