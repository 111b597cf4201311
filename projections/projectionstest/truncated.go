package projectionstest

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/rtstack/rtstack/events"
	"github.com/rtstack/rtstack/infra/kafka"
	"github.com/rtstack/rtstack/infra/kafka/kafkatest"
	"github.com/rtstack/rtstack/internal/testsvc"
	"github.com/rtstack/rtstack/projections"
)

// restartableLog is a Log whose broker can be stopped and started again
// on the same address and data directory.
type restartableLog struct {
	*kafkatest.Log
	dir    string
	broker *kafka.Broker
}

func newRestartableLog(t *testing.T, partitions int32) *restartableLog {
	dir := t.TempDir()
	b := kafkatest.Broker(t, dir)
	kafkatest.Topic(t, b.Addr(), topic, partitions)
	l := &kafkatest.Log{Addr: b.Addr(), Topic: topic, Client: kafkatest.Client(t, b.Addr()), Codec: kafkatest.Codec(t)}
	return &restartableLog{Log: l, dir: dir, broker: b}
}

// loseTail stops the broker, cuts partition part back to keep records and
// starts the broker again; it returns the partition's new end.
func (l *restartableLog) loseTail(t *testing.T, part int32, keep int64) int64 {
	l.broker.Close()
	end := kafkatest.TruncatePartition(t, l.dir, topic, part, keep)
	b, err := kafka.StartBroker(kafka.BrokerConfig{Addr: l.Addr, DataDir: l.dir})
	if err != nil {
		t.Fatalf("restart broker: %v", err)
	}
	t.Cleanup(b.Close)
	l.broker = b
	l.Client = kafkatest.Client(t, l.Addr)
	if got := l.Ends(t)[part]; got != end {
		t.Fatalf("partition %d ends at %d after the truncation, want %d", part, got, end)
	}
	return end
}

// produceEach appends evs one batch each, so the log can be cut between
// any two of them; it returns their partition.
func (l *restartableLog) produceEach(t *testing.T, evs []events.Event) int32 {
	var part int32
	for _, ev := range evs {
		part = l.Produce(t, []events.Event{ev})[0].Partition
	}
	return part
}

// wantTruncated checks that err names exactly part at checkpoint cp and
// log end end.
func wantTruncated(t *testing.T, err error, part int32, cp, end int64) {
	t.Helper()
	var te *projections.TruncatedError
	if !errors.As(err, &te) || !errors.Is(err, projections.ErrLogTruncated) {
		t.Fatalf("projector on a truncated log: %v, want a TruncatedError", err)
	}
	want := fmt.Sprint([]kafka.Truncation{{Partition: part, Position: cp, End: end}})
	if got := fmt.Sprint(te.Parts); got != want {
		t.Errorf("truncation names %s, want %s", got, want)
	}
}

// truncatedLogIsRefusedThenRebuilt: the log loses its tail under a
// store's checkpoints (a partition's segment cut while the broker is
// stopped). A projector refuses to start, naming the partition, the
// checkpoint and the end, counts it, and applies nothing, even after new
// records reuse the lost offsets; a rebuild replaces the active version
// with what the log holds, new records included; a running projector
// that meets a truncation stops the same way.
func truncatedLogIsRefusedThenRebuilt(t *testing.T, h Harness) {
	l := newRestartableLog(t, 2)
	s, _ := h.Open(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	part := l.produceEach(t, sends("alice", "old-", 6)) // one room: one partition
	stop := run(ctx, t, l.Log, s, "truncated")
	ends := l.Ends(t)
	testsvc.Eventually(t, time.Minute, "log projected", func() bool { return caughtUp(s, ends) })
	if err := stop(); err != nil {
		t.Fatal(err)
	}

	end := l.loseTail(t, part, 3)
	if end != 3 {
		t.Fatalf("the log ends at %d after losing its tail, want 3", end)
	}
	oldCps, oldDigest := checkpoints(t, s), digest(t, s)
	reg := prometheus.NewRegistry()
	pr, err := projections.NewProjector(projections.Config{Kafka: kafka.ClientConfig{Brokers: []string{l.Addr}}, Topic: topic, Group: "truncated",
		Codec: l.Codec, Store: s, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	rctx, rcancel := context.WithTimeout(ctx, 30*time.Second)
	defer rcancel()
	wantTruncated(t, pr.Run(rctx), part, 6, end)
	if rctx.Err() != nil {
		t.Fatal("the projector did not stop by itself")
	}
	if n := testsvc.Sum(t, reg, "rtstack_projection_log_truncated_total"); n != 1 {
		t.Errorf("rtstack_projection_log_truncated_total = %v, want 1", n)
	}
	if fmt.Sprint(checkpoints(t, s)) != fmt.Sprint(oldCps) || digest(t, s) != oldDigest {
		t.Error("the refused start changed the projection")
	}

	l.produceEach(t, sends("bob", "new-", 2)) // offsets 3, 4: below the old checkpoint
	if err := rebuild(ctx, l.Log, s); err != nil {
		t.Fatalf("rebuild of the truncated log: %v", err)
	}
	if n := h.Messages(t, s, "r"); n != int(end)+2 {
		t.Errorf("after rebuild: %d messages, want the %d that survived and the 2 new", n, end)
	}

	done := make(chan error, 1)
	lctx, lcancel := context.WithCancel(ctx)
	defer lcancel()
	live, err := projections.NewProjector(projections.Config{Kafka: kafka.ClientConfig{Brokers: []string{l.Addr}}, Topic: topic, Group: "truncated-live",
		Codec: l.Codec, Store: s, SessionTimeout: 6 * time.Second, LagInterval: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	go func() { done <- live.Run(lctx) }()
	l.produceEach(t, sends("bob", "new-live-", 1))
	ends = l.Ends(t)
	testsvc.Eventually(t, time.Minute, "projected live after the rebuild", func() bool { return caughtUp(s, ends) })
	if n := h.Messages(t, s, "r"); n != int(end)+3 {
		t.Errorf("live after rebuild: %d messages, want %d", n, end+3)
	}

	cut := l.loseTail(t, part, 4)
	if cut != 4 {
		t.Fatalf("the log ends at %d after losing its tail again, want 4", cut)
	}
	select {
	case err := <-done:
		wantTruncated(t, err, part, ends[part], cut)
	case <-time.After(time.Minute):
		t.Fatal("a running projector did not notice the log lost its tail")
	}
}
