package projectionstest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/rtstack/rtstack/infra/kafka"
	"github.com/rtstack/rtstack/infra/kafka/kafkatest"
	"github.com/rtstack/rtstack/internal/testsvc"
	"github.com/rtstack/rtstack/projections"
)

// anotherLogIsRefused: two deployments (two brokers with their own data:
// two clusters) share one store. The second's projector refuses to start
// and its rebuild refuses to begin, both naming the two logs, and the
// first's projection is untouched; a rebuild told to adopt the store
// replaces it with the second log's, and the first's running projector
// notices within its lag interval and stops instead of writing on.
func anotherLogIsRefused(t *testing.T, h Harness) {
	first, second := kafkatest.NewLog(t, topic, 2), kafkatest.NewLog(t, topic, 2)
	s, _ := h.Open(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	first.Produce(t, sends("alice", "first-", 6))
	second.Produce(t, sends("bob", "second-", 2))

	pr, err := projections.NewProjector(projections.Config{Kafka: kafka.ClientConfig{Brokers: []string{first.Addr}}, Topic: topic, Group: "first",
		Codec: first.Codec, Store: s, SessionTimeout: 6 * time.Second, LagInterval: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- pr.Run(ctx) }()
	ends := first.Ends(t)
	testsvc.Eventually(t, time.Minute, "first log projected", func() bool { return caughtUp(s, ends) })
	before := digest(t, s)

	wantOther := func(what string, err error) {
		t.Helper()
		var mm *projections.LogMismatchError
		if !errors.Is(err, projections.ErrOtherLog) || !errors.As(err, &mm) {
			t.Fatalf("%s: %v, want ErrOtherLog", what, err)
		}
		if mm.Bound.Cluster == "" || mm.Reading.Cluster == "" || mm.Bound == mm.Reading {
			t.Errorf("%s: %q does not name both logs", what, err)
		}
	}
	rctx, rcancel := context.WithTimeout(ctx, 30*time.Second)
	defer rcancel()
	other, err := projections.NewProjector(projections.Config{Kafka: kafka.ClientConfig{Brokers: []string{second.Addr}}, Topic: topic, Group: "second",
		Codec: second.Codec, Store: s})
	if err != nil {
		t.Fatal(err)
	}
	wantOther("projector of the second log", other.Run(rctx))
	wantOther("rebuild from the second log", rebuild(ctx, second, s))
	if digest(t, s) != before || h.Messages(t, s, "r") != 6 {
		t.Fatal("the refused second deployment changed the first's projection")
	}

	if err := projections.Rebuild(ctx, projections.RebuildConfig{Kafka: kafka.ClientConfig{Brokers: []string{second.Addr}}, Topic: topic,
		Codec: second.Codec, Target: s, AdoptLog: true}); err != nil {
		t.Fatalf("rebuild adopting the store: %v", err)
	}
	if n := h.Messages(t, s, "r"); n != 2 {
		t.Errorf("after adopting: %d messages, want the second log's 2", n)
	}
	select {
	case err := <-done:
		wantOther("the first deployment's projector after the takeover", err)
	case <-time.After(30 * time.Second):
		t.Fatal("the first deployment's projector did not notice its store was taken over")
	}
	first.Produce(t, sends("alice", "late-", 1))
	if n := h.Messages(t, s, "r"); n != 2 {
		t.Errorf("%d messages: the stopped projector wrote on", n)
	}
}
