package redis

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"slices"
	"sort"
	"strconv"
	"strings"

	goredis "github.com/redis/go-redis/v9"

	"github.com/rtstack/rtstack/projections/view"
)

// Digest hashes the active version's content: every key with the version
// prefix stripped, in sorted order, with its type and its elements in
// sorted order (hash fields, set members, sorted-set members with integer
// scores), each string length-prefixed. The checkpoints (and a build's
// bw keys, see applyBuilt), the bound topic id and the pointer are left
// out, so a live projection and a rebuild of the same log digest equally.
// Call it when no batch is being applied (a concurrent Apply may be
// half-seen); if a Promote happens meanwhile it starts again. With no
// active version (Redis lost its data and no Apply re-created it yet) it
// is the digest of an empty projection.
func (p *Projection) Digest(ctx context.Context) (string, error) {
	for attempt := 0; ; attempt++ {
		ver, err := p.ActiveVersion(ctx)
		if errors.Is(err, goredis.Nil) {
			ver = "v0" // never created (numbers start at 1): no keys
		} else if err != nil {
			return "", err
		}
		sum, err := p.digestVersion(ctx, ver)
		if err != nil {
			return "", err
		}
		again, err := p.ActiveVersion(ctx)
		if errors.Is(err, goredis.Nil) {
			again = "v0"
		} else if err != nil {
			return "", err
		}
		if again == ver {
			return sum, nil
		}
		if attempt >= 3 {
			return "", fmt.Errorf("redis projection: digest: active version keeps changing")
		}
	}
}

// DigestVersion hashes one version's content like Digest ("" = the
// active one); an unknown version is an error wrapping
// view.ErrUnknownVersion.
func (p *Projection) DigestVersion(ctx context.Context, version string) (string, error) {
	if version == "" {
		return p.Digest(ctx)
	}
	known, err := p.rdb.SIsMember(ctx, p.cfg.Prefix+"versions", version).Result()
	if err != nil {
		return "", fmt.Errorf("redis projection: digest %s: %w", version, err)
	}
	if !known {
		return "", fmt.Errorf("redis projection: digest %q: %w", version, view.ErrUnknownVersion)
	}
	return p.digestVersion(ctx, version)
}

func (p *Projection) digestVersion(ctx context.Context, version string) (string, error) {
	base := p.cfg.Prefix + version + ":"
	var keys []string
	var cursor uint64
	for {
		batch, next, err := p.rdb.Scan(ctx, cursor, globEscape(base)+"*", 1000).Result()
		if err != nil {
			return "", fmt.Errorf("redis projection: digest: %w", err)
		}
		for _, k := range batch {
			if k != base+"cp" && k != base+"log" && !strings.HasPrefix(k, base+"bw:") {
				keys = append(keys, k)
			}
		}
		if cursor = next; cursor == 0 {
			break
		}
	}
	slices.Sort(keys)
	keys = slices.Compact(keys) // SCAN may return a key twice
	h := sha256.New()
	for start := 0; start < len(keys); start += 200 {
		chunk := keys[start:min(start+200, len(keys))]
		types := make([]*goredis.StatusCmd, len(chunk))
		pipe := p.rdb.Pipeline()
		for i, k := range chunk {
			types[i] = pipe.Type(ctx, k)
		}
		if _, err := pipe.Exec(ctx); err != nil {
			return "", fmt.Errorf("redis projection: digest: %w", err)
		}
		vals := make([]goredis.Cmder, len(chunk))
		pipe = p.rdb.Pipeline()
		for i, k := range chunk {
			switch types[i].Val() {
			case "string":
				vals[i] = pipe.Get(ctx, k)
			case "hash":
				vals[i] = pipe.HGetAll(ctx, k)
			case "set":
				vals[i] = pipe.SMembers(ctx, k)
			case "zset":
				vals[i] = pipe.ZRangeWithScores(ctx, k, 0, -1)
			case "none":
				// Deleted since the scan (a trimmed or emptied key).
			default:
				return "", fmt.Errorf("redis projection: digest: key %s has type %s", k, types[i].Val())
			}
		}
		if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, goredis.Nil) {
			return "", fmt.Errorf("redis projection: digest: %w", err)
		}
		for i, k := range chunk {
			if vals[i] == nil {
				continue
			}
			writeStr(h, k[len(base):])
			switch c := vals[i].(type) {
			case *goredis.StringCmd:
				writeStr(h, "string")
				writeStr(h, c.Val())
			case *goredis.MapStringStringCmd:
				writeStr(h, "hash")
				m := c.Val()
				fields := make([]string, 0, len(m))
				for f := range m {
					fields = append(fields, f)
				}
				sort.Strings(fields)
				writeLen(h, len(fields))
				for _, f := range fields {
					writeStr(h, f)
					writeStr(h, m[f])
				}
			case *goredis.StringSliceCmd:
				writeStr(h, "set")
				ms := c.Val()
				sort.Strings(ms)
				writeLen(h, len(ms))
				for _, m := range ms {
					writeStr(h, m)
				}
			case *goredis.ZSliceCmd:
				writeStr(h, "zset")
				zs := c.Val()
				sort.Slice(zs, func(a, b int) bool { return fmt.Sprint(zs[a].Member) < fmt.Sprint(zs[b].Member) })
				writeLen(h, len(zs))
				for _, z := range zs {
					writeStr(h, fmt.Sprint(z.Member))
					writeStr(h, strconv.FormatFloat(z.Score, 'f', -1, 64))
				}
			}
		}
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func writeLen(h hash.Hash, n int) {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(n))
	h.Write(b[:])
}

func writeStr(h hash.Hash, s string) {
	writeLen(h, len(s))
	h.Write([]byte(s))
}
