package redis

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	goredis "github.com/redis/go-redis/v9"

	"github.com/rtstack/rtstack/events"
)

// maxFoldAttempts bounds how often buildChunk reads a chunk again because
// a key it watches changed between its read and its write.
const maxFoldAttempts = 5

// errBuiltActive: the version being built became the active one
// (promoted), so the live projector writes it too.
var errBuiltActive = errors.New("the version is active")

// applyBuilt folds recs into a version being built (one only a rebuild
// writes), chunk by chunk (BuildChunkSize records), with no per-record
// script: under WATCH of the active pointer, the version list, the
// partition's build key (bw:<partition>) and the keys the chunk may write,
// one pipeline reads the checkpoint and those keys; Go folds the records at
// or past the checkpoint into the values read (fold); one MULTI/EXEC writes
// each key's net change, the checkpoint and the build key. EXEC applies
// nothing if a watched key changed since the read (a late copy of the same
// chunk, a Promote, a version dropped, another partition's chunk on the
// same room), and the chunk is read again. A crash anywhere leaves either
// all of a chunk or none of it. Once the version is active, the rest of
// the batch goes through applyScript like the live projector's.
func (p *Projection) applyBuilt(ctx context.Context, s *versionStore, partition int32, recs []events.Record, next int64) error {
	version := s.version
	for _, r := range recs {
		if r.Partition != partition {
			return fmt.Errorf("redis projection: record at %s in a batch of partition %d", r.Position, partition)
		}
	}
	part := strconv.FormatInt(int64(partition), 10)
	chunk := p.cfg.BuildChunkSize
	for start := 0; start == 0 || start < len(recs); start += chunk {
		end := min(start+chunk, len(recs))
		to := next
		if end < len(recs) {
			to = recs[end].Offset
		}
		err := p.buildChunk(ctx, s, part, recs[start:end], to)
		if errors.Is(err, errBuiltActive) {
			return p.applyScripted(ctx, version, partition, recs[start:], next)
		}
		if err != nil {
			if reset := p.reset(partition, version, err); reset != nil {
				return reset
			}
			return fmt.Errorf("redis projection: apply %d records of partition %d to %s: %w", len(recs), partition, version, err)
		}
	}
	return nil
}

// buildChunk folds one chunk, reading it again while EXEC finds a watched
// key changed (at most maxFoldAttempts times; then an error wrapping
// goredis.TxFailedErr, which IsRetryable says to retry later).
func (p *Projection) buildChunk(ctx context.Context, s *versionStore, part string, recs []events.Record, next int64) error {
	var err error
	for range maxFoldAttempts {
		f := s.fold()
		f.gather(recs)
		watched := f.watchKeys([]string{p.cfg.Prefix + "active", p.cfg.Prefix + "versions", f.v + "bw:" + part})
		err = p.rdb.Watch(ctx, func(tx *goredis.Tx) error {
			return p.foldOnce(ctx, tx, f, s, part, next)
		}, watched...)
		s.release(f)
		if !errors.Is(err, goredis.TxFailedErr) {
			return err
		}
	}
	return fmt.Errorf("chunk read %d times, changed under it each time: %w", maxFoldAttempts, err)
}

// foldOnce reads, folds and writes the chunk f gathered on tx (WATCH is
// on).
func (p *Projection) foldOnce(ctx context.Context, tx *goredis.Tx, f *fold, s *versionStore, part string, next int64) error {
	version := s.version
	seen := s.ids()
	f.pick(seen)
	var active *goredis.StringCmd
	var known *goredis.BoolCmd
	var cpCmd *goredis.StringCmd
	var reads []roomReads
	cmds, err := tx.Pipelined(ctx, func(pipe goredis.Pipeliner) error {
		active = pipe.Get(ctx, p.cfg.Prefix+"active")
		known = pipe.SIsMember(ctx, p.cfg.Prefix+"versions", version)
		cpCmd = pipe.HGet(ctx, f.v+"cp", part)
		reads = f.queueReads(ctx, pipe)
		return nil
	})
	if err := firstError(cmds, err); err != nil {
		return err
	}
	if !known.Val() {
		return errors.New("RTSTACK version " + version + " does not exist")
	}
	if active.Val() == version {
		return errBuiltActive
	}
	cp := int64(0)
	if s := cpCmd.Val(); s != "" {
		if cp, err = strconv.ParseInt(s, 10, 64); err != nil {
			return fmt.Errorf("checkpoint %q: %w", s, err)
		}
	}
	if next <= cp {
		return nil // every record is below the checkpoint, which stays
	}
	if err := f.load(reads); err != nil {
		return err
	}
	f.apply(cp)
	cmds, err = tx.TxPipelined(ctx, func(pipe goredis.Pipeliner) error {
		f.queueWrites(ctx, pipe, seen)
		pipe.HSet(ctx, f.v+"cp", part, next)
		pipe.Set(ctx, f.v+"bw:"+part, next, 0)
		return nil
	})
	return firstError(cmds, err)
}

// firstError is the first error of a pipeline's commands other than
// goredis.Nil (a missing key or field, which the reads expect), else err
// unless it is goredis.Nil.
func firstError(cmds []goredis.Cmder, err error) error {
	if errors.Is(err, goredis.TxFailedErr) {
		return err
	}
	for _, c := range cmds {
		if e := c.Err(); e != nil && !errors.Is(e, goredis.Nil) {
			return e
		}
	}
	if err != nil && !errors.Is(err, goredis.Nil) {
		return err
	}
	return nil
}
