package redis_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/rtstack/rtstack/internal/testsvc"
	"github.com/rtstack/rtstack/projections"
)

// binder is what a version store returned by Begin must also be.
type binder interface {
	projections.Store
	projections.LogBinder
}

// BindLog records the first topic id of a version and only that one; a
// version Begin hands out is bound on its own.
func TestBindLogRecordsOnce(t *testing.T) {
	testsvc.Integration(t)
	p, rdb, prefix := open(t)
	ctx := context.Background()
	if err := p.BindLog(ctx, "topic-A"); err != nil {
		t.Fatalf("first bind: %v", err)
	}
	if err := p.BindLog(ctx, "topic-A"); err != nil {
		t.Fatalf("same id again: %v", err)
	}
	err := p.BindLog(ctx, "topic-B")
	if !errors.Is(err, projections.ErrLogChanged) {
		t.Fatalf("other id: %v, want ErrLogChanged", err)
	}
	if msg := err.Error(); !strings.Contains(msg, "topic-A") || !strings.Contains(msg, "topic-B") {
		t.Errorf("error %q does not name both topic ids", msg)
	}
	// A second instance over the same keys sees the same binding.
	if err := openWith(t, rdb, prefix).BindLog(ctx, "topic-B"); !errors.Is(err, projections.ErrLogChanged) {
		t.Errorf("other instance, other id: %v, want ErrLogChanged", err)
	}

	s, ver, err := p.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	b, ok := s.(binder)
	if !ok {
		t.Fatalf("Begin's store %T is not a projections.LogBinder", s)
	}
	if err := b.BindLog(ctx, "topic-B"); err != nil {
		t.Fatalf("new version, new id: %v", err)
	}
	if err := b.BindLog(ctx, "topic-A"); !errors.Is(err, projections.ErrLogChanged) {
		t.Errorf("new version, other id: %v, want ErrLogChanged", err)
	}
	if err := p.BindLog(ctx, "topic-A"); err != nil {
		t.Errorf("active version after binding %s: %v", ver, err)
	}
	if err := p.Abandon(ctx, ver); err != nil {
		t.Fatal(err)
	}
	if err := b.BindLog(ctx, "topic-B"); err == nil || errors.Is(err, projections.ErrLogChanged) {
		t.Errorf("bind of an abandoned version: %v, want a plain error", err)
	}
}

// Promote compares checkpoints only between versions of the same log: a
// version of a recreated log replaces the active one even with lower
// offsets; of the same log, a version behind is refused as before.
func TestPromoteAcrossLogs(t *testing.T) {
	testsvc.Integration(t)
	p, _, _ := open(t)
	ctx := context.Background()
	if err := p.BindLog(ctx, "topic-A"); err != nil {
		t.Fatal(err)
	}
	applyAll(t, p, sent("a", "ann", "m1", base), sent("a", "ann", "m2", base), sent("a", "ann", "m3", base))
	before := digest(t, p)

	same, sameVer, err := p.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := same.(binder).BindLog(ctx, "topic-A"); err != nil {
		t.Fatal(err)
	}
	applyAll(t, same, sent("a", "bob", "n1", base))
	if ok, err := p.Promote(ctx, sameVer); err != nil || ok {
		t.Fatalf("promote a version of the same log that is behind = %v, %v; want false", ok, err)
	}
	if err := p.Abandon(ctx, sameVer); err != nil {
		t.Fatal(err)
	}

	other, otherVer, err := p.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := other.(binder).BindLog(ctx, "topic-B"); err != nil {
		t.Fatal(err)
	}
	applyAll(t, other, sent("a", "bob", "n1", base))
	if ok, err := p.Promote(ctx, otherVer); err != nil || !ok {
		t.Fatalf("promote a version of the recreated log = %v, %v; want true", ok, err)
	}
	if got := digest(t, p); got == before {
		t.Error("digest unchanged by the promotion")
	}
	if c := counters(t, p, "a"); c.Total != 1 {
		t.Errorf("total after promotion %d, want the new log's 1", c.Total)
	}
	// The instance bound to topic-A now refuses to apply into topic-B's version.
	err = p.Apply(ctx, 0, records(1, sent("a", "ann", "m4", base)), 2)
	if !errors.Is(err, projections.ErrLogChanged) {
		t.Errorf("apply of the old log into the new log's version: %v, want ErrLogChanged", err)
	}
	if err := p.BindLog(ctx, "topic-B"); err != nil {
		t.Fatalf("bind the promoted version's log: %v", err)
	}
	applyAll(t, p, sent("a", "bob", "n2", base))
	if c := counters(t, p, "a"); c.Total != 2 {
		t.Errorf("total %d, want 2", c.Total)
	}
}

// After Redis lost its data, BindLog finds no active version and binds
// nothing; the Apply that re-creates the version binds it to the topic id
// this instance bound, so another log is still refused afterwards.
func TestDataLossKeepsTheLogBinding(t *testing.T) {
	testsvc.Integration(t)
	p, rdb, prefix := open(t)
	ctx := context.Background()
	if err := p.BindLog(ctx, "topic-A"); err != nil {
		t.Fatal(err)
	}
	applyAll(t, p, sent("a", "ann", "m1", base))
	wipe(t, rdb, prefix)
	if err := p.BindLog(ctx, "topic-A"); err != nil {
		t.Fatalf("bind with no active version: %v", err)
	}
	err := p.Apply(ctx, 0, records(0, sent("a", "ann", "m1", base)), 1)
	if !errors.Is(err, projections.ErrStoreReset) {
		t.Fatalf("first apply after the loss: %v, want ErrStoreReset", err)
	}
	if err := openWith(t, rdb, prefix).BindLog(ctx, "topic-B"); !errors.Is(err, projections.ErrLogChanged) {
		t.Errorf("re-created version, other id: %v, want ErrLogChanged", err)
	}
	if err := p.BindLog(ctx, "topic-A"); err != nil {
		t.Errorf("re-created version, same id: %v", err)
	}

	// An instance that never bound re-creates an unbound version: the next
	// BindLog records whichever log it reads.
	q := openWith(t, rdb, prefix)
	wipe(t, rdb, prefix)
	if err := q.Apply(ctx, 0, records(0, sent("a", "ann", "m1", base)), 1); !errors.Is(err, projections.ErrStoreReset) {
		t.Fatalf("apply after the second loss: %v, want ErrStoreReset", err)
	}
	if err := q.BindLog(ctx, "topic-C"); err != nil {
		t.Errorf("unbound re-created version: %v", err)
	}
	if err := q.BindLog(ctx, "topic-A"); !errors.Is(err, projections.ErrLogChanged) {
		t.Errorf("after binding topic-C: %v, want ErrLogChanged", err)
	}
}
