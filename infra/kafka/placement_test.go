package kafka_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/rtstack/rtstack/infra/kafka"
	"github.com/rtstack/rtstack/infra/kafka/kafkatest"
	"github.com/rtstack/rtstack/schemas"
)

// The placement rule every consumer shares: keyed by its room, in the
// room's murmur2 partition; anything else is misplaced, with its reason.
func TestPlacementRefusesWhatIsNotInItsRoomsPartition(t *testing.T) {
	codec := kafkatest.Codec(t)
	info := kafka.TopicInfo{Name: kafka.DefaultTopic, Partitions: 6}
	place := kafka.NewPlacement(codec, info)
	home := kafka.NewRoomPartitioner(kafka.DefaultTopic).Partition("room-1", 6)
	tests := []struct {
		name      string
		partition int32
		key       string
		valueTail []byte // appended to the value: a decode error wins
		want      schemas.Reason
	}{
		{"in its room's partition", home, "room-1", nil, ""},
		{"another partition", (home + 1) % 6, "room-1", nil, kafka.ReasonMisplaced},
		{"keyed by another room", home, "room-2", nil, kafka.ReasonMisplaced},
		{"no key", home, "", nil, kafka.ReasonMisplaced},
		{"undecodable, misplaced too", (home + 1) % 6, "room-1", []byte{0}, schemas.ReasonTrailingBytes},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec, err := kafka.NewRecord(codec, kafka.DefaultTopic, sentEvent(1, "room-1"))
			if err != nil {
				t.Fatal(err)
			}
			rec.Partition, rec.Key, rec.Value = tt.partition, []byte(tt.key), append(rec.Value, tt.valueTail...)
			got, err := place.Decode(rec)
			if reason := kafka.ReasonOf(err); reason != tt.want {
				t.Fatalf("Decode: %v (reason %q), want reason %q", err, reason, tt.want)
			}
			if tt.want == "" && (got.Event == nil || got.Partition != tt.partition) {
				t.Fatalf("Decode = %+v, want the event at partition %d", got, tt.partition)
			}
			if tt.want == kafka.ReasonMisplaced && (!errors.Is(err, kafka.ErrMisplaced) || got.Event != nil) {
				t.Fatalf("Decode = %+v, %v: want no event and ErrMisplaced", got, err)
			}
		})
	}
	// The error names where the room lives, for the park-error header.
	err := place.Check(&kgo.Record{Key: []byte("room-1"), Partition: (home + 1) % 6}, "room-1")
	if want := fmt.Sprintf("room %q is in partition %d of 6", "room-1", home); err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("Check: %v, want it to say %s", err, want)
	}
}
