package projections_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/rtstack/rtstack/events"
	"github.com/rtstack/rtstack/infra/kafka"
	"github.com/rtstack/rtstack/infra/kafka/kafkatest"
	"github.com/rtstack/rtstack/internal/testsvc"
	"github.com/rtstack/rtstack/projections"
	"github.com/rtstack/rtstack/projections/projectionstest"
	"github.com/rtstack/rtstack/schemas"
)

// Records a lenient decoder would have applied (trailing bytes, a body
// named with another type's schema id, a header naming another type) are
// parked with their reason, and the events around them are applied.
func TestProjectorParksWhatStrictDecodingRefuses(t *testing.T) {
	testsvc.Integration(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	const topic = "chat.events"
	l := kafkatest.NewLog(t, topic, 1)
	codec, cl := l.Codec, l.Client
	log := kafka.NewLog(cl, codec, topic)

	sent, err := kafka.NewRecord(codec, topic, &events.MessageSent{Envelope: events.Envelope{ID: "s", Room: "room-0", User: "u"}, MessageID: "m", Text: "hi"})
	if err != nil {
		t.Fatal(err)
	}
	trailing := *sent
	trailing.Value = append(sent.Value[:len(sent.Value):len(sent.Value)], 0)
	wrongID := *sent
	wrongID.Headers = nil
	wrongID.Value = append([]byte{0, 0, 0, 0, byte(codec.Registry().Latest(events.TypeMemberJoined).ID)}, sent.Value[5:]...)
	mismatch := *sent
	mismatch.Headers = []kgo.RecordHeader{{Key: kafka.HeaderEventType, Value: []byte(events.TypeMemberJoined)}}
	bad := []*kgo.Record{&trailing, &wrongID, &mismatch}
	want := []schemas.Reason{schemas.ReasonTrailingBytes, schemas.ReasonTrailingBytes, schemas.ReasonTypeMismatch}

	if _, err := log.Append(ctx, joined(0)); err != nil {
		t.Fatal(err)
	}
	if err := cl.ProduceSync(ctx, bad...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	if _, err := log.Append(ctx, joined(1)); err != nil {
		t.Fatal(err)
	}

	store := newMemStore()
	reg := prometheus.NewRegistry()
	projectionstest.Run(t, projections.Config{Kafka: kafka.ClientConfig{Brokers: []string{l.Addr}}, Topic: topic, Codec: codec, Store: store, Registerer: reg})
	testsvc.Eventually(t, 20*time.Second, "both good events applied", func() bool { return len(store.ids()[0]) == 2 })

	parked := readParked(ctx, t, l.Addr, topic+".parked", len(bad))
	for i, r := range parked {
		h := headers(r)
		if got := h[projections.HeaderParkReason]; got != string(want[i]) {
			t.Errorf("parked record %d: %s %q (%s), want %s", i, projections.HeaderParkReason, got, h[projections.HeaderParkError], want[i])
		}
		if string(r.Value) != string(bad[i].Value) {
			t.Errorf("parked record %d value %x, want %x", i, r.Value, bad[i].Value)
		}
	}
	if got := counterSum(t, reg, "rtstack_projection_records_parked_total"); got != float64(len(bad)) {
		t.Errorf("parked metric = %v, want %d", got, len(bad))
	}
}

// readParked reads the first n records of the parking topic at addr.
func readParked(ctx context.Context, t *testing.T, addr, parkTopic string, n int) []*kgo.Record {
	t.Helper()
	pc := kafkatest.Client(t, addr, kgo.ConsumeTopics(parkTopic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	var parked []*kgo.Record
	for len(parked) < n {
		fs := pc.PollFetches(ctx)
		if err := fs.Err0(); err != nil {
			t.Fatal(err)
		}
		parked = append(parked, fs.Records()...)
	}
	return parked
}

// A record outside its room's partition (another producer's partitioner)
// is parked with reason misplaced and counted by reason, the room's own
// records around it applied; a rebuild refuses it the same way, so the
// rebuilt state equals the live one.
func TestProjectorParksMisplacedRecords(t *testing.T) {
	testsvc.Integration(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	const topic, partitions = "chat.events", 3
	l := kafkatest.NewLog(t, topic, partitions)
	log := kafka.NewLog(l.Client, l.Codec, topic)
	first, err := log.Append(ctx, joined(0))
	if err != nil {
		t.Fatal(err)
	}
	stray := kafkatest.ProduceMisplaced(t, l.Addr, topic, partitions, l.Codec, joined(5)) // room-0 too, elsewhere
	if _, err := log.Append(ctx, joined(10)); err != nil {
		t.Fatal(err)
	}

	store := newMemStore()
	reg := prometheus.NewRegistry()
	projectionstest.Run(t, projections.Config{Kafka: kafka.ClientConfig{Brokers: []string{l.Addr}}, Topic: topic, Codec: l.Codec, Store: store, Registerer: reg})
	testsvc.Eventually(t, 20*time.Second, "the room's two events applied", func() bool {
		return len(store.ids()[first.Partition]) == 2
	})
	parked := readParked(ctx, t, l.Addr, topic+".parked", 1)
	h := headers(parked[0])
	if h[projections.HeaderParkReason] != string(kafka.ReasonMisplaced) || h[projections.HeaderParkPartition] != fmt.Sprint(stray.Partition) ||
		!strings.Contains(h[projections.HeaderParkError], fmt.Sprintf("partition %d of %d", first.Partition, partitions)) {
		t.Errorf("parked headers %v, want reason %s from partition %d naming the room's partition %d", h, kafka.ReasonMisplaced, stray.Partition, first.Partition)
	}
	testsvc.Eventually(t, 10*time.Second, "stray partition's checkpoint past the record", func() bool {
		cps, _ := store.Checkpoints(ctx)
		return cps[stray.Partition] == stray.Offset+1
	})
	if ids := store.ids()[stray.Partition]; len(ids) != 0 {
		t.Errorf("partition %d applied %v, want nothing", stray.Partition, ids)
	}
	if got := testsvc.Sum(t, reg, "rtstack_projection_records_parked_total", "reason", string(kafka.ReasonMisplaced)); got != 1 {
		t.Errorf("parked{reason=misplaced} = %v, want 1", got)
	}

	before, _ := store.Digest(ctx)
	if err := projections.Rebuild(ctx, projections.RebuildConfig{Kafka: kafka.ClientConfig{Brokers: []string{l.Addr}}, Topic: topic, Codec: l.Codec, Target: store}); err != nil {
		t.Fatal(err)
	}
	if after, _ := store.Digest(ctx); after != before {
		t.Errorf("digest after rebuild %s, live %s: the rebuild decided otherwise", after, before)
	}
}
