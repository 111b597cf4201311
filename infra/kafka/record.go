package kafka

import (
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/rtstack/rtstack/events"
)

// The record layout of the chat log, in one place: key = room, value =
// Confluent wire format (schemas.Codec), headers naming the event's type and
// id so the log is readable without a schema registry. NewRecord writes it;
// the helpers below read it, so no other package looks at keys or headers.
const (
	HeaderEventType = "event-type"
	HeaderEventID   = "event-id"
)

// Partitioner is the partitioner every producer of the log uses: a room's
// records all land in one partition (murmur2 of the key, as Kafka's own
// clients do), which is what keeps a room in log order.
func Partitioner() kgo.Partitioner { return kgo.StickyKeyPartitioner(nil) }

// RoomPartitioner tells which partition of one topic holds a room, with the
// producers' own Partitioner. Like kgo.TopicPartitioner it is not safe for
// concurrent use.
type RoomPartitioner struct {
	tp kgo.TopicPartitioner
	// scratch is the record partitioned, reused: every consumer checks the
	// placement of every record, and a new one each time was a replay's
	// biggest allocation after the events themselves.
	scratch *kgo.Record
}

// NewRoomPartitioner returns the room partitioner of topic.
func NewRoomPartitioner(topic string) RoomPartitioner {
	// A non-nil key even for "": a nil key would be partitioned at random.
	return RoomPartitioner{tp: Partitioner().ForTopic(topic), scratch: &kgo.Record{Key: make([]byte, 0, 64)}}
}

// Partition returns the partition of room among partitions.
func (p RoomPartitioner) Partition(room string, partitions int) int32 {
	p.scratch.Key = append(p.scratch.Key[:0], room...)
	return int32(p.tp.Partition(p.scratch, partitions))
}

// InRoom reports whether r belongs to room, without decoding it or copying
// its key.
func InRoom(r *kgo.Record, room string) bool { return string(r.Key) == room }

// EventType returns the type r's header names, or "" when the header is
// missing (a record not written by NewRecord): decode it to know.
func EventType(r *kgo.Record) events.Type { return events.Type(header(r, HeaderEventType)) }

// EventID returns the event id r's header names, or "" when it is missing.
func EventID(r *kgo.Record) string { return header(r, HeaderEventID) }

func header(r *kgo.Record, key string) string {
	for _, h := range r.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}
