package dedupe_test

import (
	"context"
	"testing"
	"time"

	"github.com/rtstack/rtstack/events"
	"github.com/rtstack/rtstack/gateway/dedupe"
	"github.com/rtstack/rtstack/internal/testsvc"
)

func TestRoundTrip(t *testing.T) {
	rdb, prefix := testsvc.Redis(t)
	ctx := context.Background()
	o := dedupe.New(rdb, prefix, time.Hour)

	if _, ok, err := o.Get(ctx, "room\x00alice\x00c1"); err != nil || ok {
		t.Fatalf("Get of an unknown key = %v, %v; want not found", ok, err)
	}
	first := events.Position{Partition: 3, Offset: 12345678901}
	if err := o.Put(ctx, "room\x00alice\x00c1", first); err != nil {
		t.Fatal(err)
	}
	// A later Put of the same key keeps the first outcome.
	if err := o.Put(ctx, "room\x00alice\x00c1", events.Position{Partition: 3, Offset: 99}); err != nil {
		t.Fatal(err)
	}
	got, ok, err := o.Get(ctx, "room\x00alice\x00c1")
	if err != nil || !ok || got != first {
		t.Fatalf("Get = %v, %v, %v; want %v", got, ok, err, first)
	}
	// Another shared instance (another gateway) sees it.
	got, ok, _ = dedupe.New(rdb, prefix, time.Hour).Get(ctx, "room\x00alice\x00c1")
	if !ok || got != first {
		t.Fatalf("second instance Get = %v, %v", got, ok)
	}
	if ttl := rdb.TTL(ctx, prefix+"outcome:room\x00alice\x00c1").Val(); ttl <= 59*time.Minute || ttl > time.Hour {
		t.Fatalf("TTL = %v, want about 1h", ttl)
	}
}

func TestExpiry(t *testing.T) {
	rdb, prefix := testsvc.Redis(t)
	ctx := context.Background()
	o := dedupe.New(rdb, prefix, 50*time.Millisecond)
	if err := o.Put(ctx, "k", events.Position{Partition: 0, Offset: 1}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, ok, err := o.Get(ctx, "k")
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("outcome did not expire")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestCorruptValue(t *testing.T) {
	rdb, prefix := testsvc.Redis(t)
	ctx := context.Background()
	rdb.Set(ctx, prefix+"outcome:bad", "garbage", time.Minute)
	if _, _, err := dedupe.New(rdb, prefix, 0).Get(ctx, "bad"); err == nil {
		t.Fatal("Get of a corrupt value succeeded")
	}
}

// A claim is taken once, reads as "no outcome yet", is replaced by the
// position, and is released only by its owner.
func TestClaim(t *testing.T) {
	rdb, prefix := testsvc.Redis(t)
	ctx := context.Background()
	o := dedupe.New(rdb, prefix, time.Hour)
	first, err := o.Claim(ctx, "k1", time.Minute)
	if err != nil || first.Token == "" || first.Done {
		t.Fatalf("first claim = %+v, %v", first, err)
	}
	if c, err := dedupe.New(rdb, prefix, time.Hour).Claim(ctx, "k1", time.Minute); err != nil || c.Token != "" || c.Done {
		t.Fatalf("second claim from another gateway = %+v, %v; want refused, no outcome yet", c, err)
	}
	if _, ok, err := o.Get(ctx, "k1"); err != nil || ok {
		t.Fatalf("Get of a claimed key = %v, %v; want no outcome yet", ok, err)
	}
	if err := o.Release(ctx, "k1", "claim:someone-else"); err != nil {
		t.Fatal(err)
	}
	if c, _ := o.Claim(ctx, "k1", time.Minute); c.Token != "" {
		t.Fatal("a release with another token dropped the claim")
	}
	pos := events.Position{Partition: 1, Offset: 7}
	if err := o.Put(ctx, "k1", pos); err != nil {
		t.Fatal(err)
	}
	if got, ok, err := o.Get(ctx, "k1"); err != nil || !ok || got != pos {
		t.Fatalf("Get after Put = %v, %v, %v", got, ok, err)
	}
	if c, err := o.Claim(ctx, "k1", time.Minute); err != nil || !c.Done || c.Position != pos || c.Token != "" {
		t.Fatalf("Claim after Put = %+v, %v; want the outcome", c, err)
	}
	if err := o.Release(ctx, "k1", first.Token); err != nil {
		t.Fatal(err)
	}
	if got, ok, _ := o.Get(ctx, "k1"); !ok || got != pos {
		t.Fatal("a release after the outcome dropped the outcome")
	}
	c2, _ := o.Claim(ctx, "k2", time.Minute)
	if err := o.Release(ctx, "k2", c2.Token); err != nil || c2.Token == "" {
		t.Fatal(err)
	}
	if c, _ := o.Claim(ctx, "k2", time.Minute); c.Token == "" {
		t.Fatal("a released claim cannot be taken again")
	}
}
