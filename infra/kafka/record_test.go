package kafka_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/rtstack/rtstack/events"
	"github.com/rtstack/rtstack/infra/kafka"
	"github.com/rtstack/rtstack/infra/kafka/kafkatest"
	"github.com/rtstack/rtstack/internal/testsvc"
)

func sentEvent(i int, room string) *events.MessageSent {
	return &events.MessageSent{Envelope: events.Envelope{ID: fmt.Sprint("e", i), Room: room, User: "u", Time: int64(i)}, MessageID: fmt.Sprint("m", i), Text: "hi"}
}

func TestRecordLayoutHelpersReadWhatNewRecordWrites(t *testing.T) {
	rec, err := kafka.NewRecord(kafkatest.Codec(t), kafka.DefaultTopic, sentEvent(7, "room-1"))
	if err != nil {
		t.Fatal(err)
	}
	if !kafka.InRoom(rec, "room-1") || kafka.InRoom(rec, "room-2") {
		t.Errorf("InRoom(room-1, room-2) = %v, %v; want true, false", kafka.InRoom(rec, "room-1"), kafka.InRoom(rec, "room-2"))
	}
	if got := kafka.EventType(rec); got != events.TypeMessageSent {
		t.Errorf("EventType = %q, want %q", got, events.TypeMessageSent)
	}
	if got := kafka.EventID(rec); got != "e7" {
		t.Errorf("EventID = %q, want e7", got)
	}
	rec.Headers = nil
	if got := kafka.EventType(rec); got != "" {
		t.Errorf("EventType without headers = %q, want empty", got)
	}
}

// The gateway locates a room's partition with RoomPartitioner; it must be
// the partition the producer really wrote to.
func TestRoomPartitionerAgreesWithTheProducer(t *testing.T) {
	testsvc.Integration(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b := kafkatest.Broker(t, "")
	kafkatest.Topic(t, b.Addr(), kafka.DefaultTopic, 8)
	log := kafka.NewLog(kafkatest.Client(t, b.Addr()), kafkatest.Codec(t), kafka.DefaultTopic)
	part := kafka.NewRoomPartitioner(kafka.DefaultTopic)
	seen := map[int32]bool{}
	for i := range 40 {
		room := fmt.Sprint("room-", i)
		pos, err := log.Append(ctx, sentEvent(i, room))
		if err != nil {
			t.Fatal(err)
		}
		if want := part.Partition(room, 8); pos.Partition != want {
			t.Errorf("%s written to partition %d, RoomPartitioner says %d", room, pos.Partition, want)
		}
		seen[pos.Partition] = true
	}
	if len(seen) < 2 {
		t.Errorf("40 rooms all in %d partition(s): the key is not what partitions", len(seen))
	}
}

// RoomPartitioner reuses one scratch record: rooms of any length, in any
// order, and the empty room (hashed, not sticky) get the partition a
// fresh record of their key gets.
func TestRoomPartitionerReusesItsRecordSafely(t *testing.T) {
	part := kafka.NewRoomPartitioner(kafka.DefaultTopic)
	// "" first: a nil key would be partitioned at random (sticky), not hashed.
	rooms := []string{"", "a-much-longer-room-name-than-the-others-" + strings.Repeat("x", 100), "r", "", "room-7", "r", "ünïcode"}
	for range 3 {
		for _, room := range rooms {
			fresh := kafka.Partitioner().ForTopic(kafka.DefaultTopic).Partition(&kgo.Record{Key: []byte(room)}, 1000)
			if got := part.Partition(room, 1000); got != int32(fresh) {
				t.Errorf("room %q: partition %d, a fresh record's %d", room, got, fresh)
			}
		}
	}
}
