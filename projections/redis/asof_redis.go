package redis

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/rtstack/rtstack/projections"
	"github.com/rtstack/rtstack/projections/view"
)

var _ projections.Snapshots = (*Projection)(nil)

// BeginAsOf creates a new, empty version recorded as built as of cut; see
// projections.Snapshots.
func (p *Projection) BeginAsOf(ctx context.Context, cut string) (projections.Store, string, error) {
	if cut == "" {
		return nil, "", errors.New("redis projection: as-of version without a cut")
	}
	return p.begin(ctx, cut)
}

// Seal marks an as-of version finished. Promote refuses it, and the live
// projector only ever writes the active version, so it stays as built.
func (p *Projection) Seal(ctx context.Context, version string) error {
	if err := p.run(ctx, sealScript, p.cfg.Prefix, version).Err(); err != nil {
		return fmt.Errorf("redis projection: seal %s: %w", version, err)
	}
	return nil
}

// Versions lists the versions, oldest first.
func (p *Projection) Versions(ctx context.Context) ([]projections.VersionInfo, error) {
	pipe := p.rdb.Pipeline()
	active := pipe.Get(ctx, p.cfg.Prefix+"active")
	names := pipe.SMembers(ctx, p.cfg.Prefix+"versions")
	asOf := pipe.HGetAll(ctx, p.cfg.Prefix+"asof")
	sealed := pipe.SMembers(ctx, p.cfg.Prefix+"sealed")
	created := pipe.HGetAll(ctx, p.cfg.Prefix+"created")
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, goredis.Nil) {
		return nil, fmt.Errorf("redis projection: versions: %w", err)
	}
	isSealed := map[string]bool{}
	for _, v := range sealed.Val() {
		isSealed[v] = true
	}
	out := make([]projections.VersionInfo, 0, len(names.Val()))
	for _, v := range names.Val() {
		info := projections.VersionInfo{Name: v, State: "building", AsOf: asOf.Val()[v]}
		switch {
		case v == active.Val():
			info.State = "active"
		case isSealed[v]:
			info.State = "as-of"
		}
		if ms, err := strconv.ParseInt(created.Val()[v], 10, 64); err == nil {
			info.Created = time.UnixMilli(ms).UTC()
		}
		out = append(out, info)
	}
	slices.SortFunc(out, func(a, b projections.VersionInfo) int { return versionNumber(a.Name) - versionNumber(b.Name) })
	return out, nil
}

// versionNumber is N of "v<N>" (0 if the name is not one).
func versionNumber(v string) int {
	n, _ := strconv.Atoi(v[min(1, len(v)):])
	return n
}

// Drop deletes a version that is not the active one (an as-of version, or
// a rebuild's that is not needed any more).
func (p *Projection) Drop(ctx context.Context, version string) error {
	known := checkVersion(version) == nil
	if known {
		var err error
		if known, err = p.rdb.SIsMember(ctx, p.cfg.Prefix+"versions", version).Result(); err != nil {
			return fmt.Errorf("redis projection: drop %s: %w", version, err)
		}
	}
	if !known {
		return fmt.Errorf("redis projection: drop %q: %w", version, view.ErrUnknownVersion)
	}
	return p.Abandon(ctx, version)
}
