package kafka

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/rtstack/rtstack/events"
	"github.com/rtstack/rtstack/schemas"
)

// The placement rule of the log (docs/architecture.md, rule 2): a room's
// records are keyed by the room and live in the one partition Partitioner
// puts the room in. Positions, live dedupe, `since` recovery and the
// reactor's per-partition state all rest on it; a record written by a
// producer with another partitioner breaks it and is refused, alike, by
// every consumer.

// ReasonMisplaced is the reason a misplaced record is refused with, in a
// park header or a metric label: its key is not its room, or its partition
// is not its room's.
const ReasonMisplaced schemas.Reason = "misplaced"

// ErrMisplaced: the record is not where the placement rule puts its room.
// Every *MisplacedError wraps it. Like a decode error it is permanent: the
// record is parked (projectors) or skipped and counted (reactor, gateway).
var ErrMisplaced = errors.New("record outside its room's partition")

// MisplacedError says where a refused record was and where its room lives.
type MisplacedError struct {
	Room       string // the event's room
	Key        string // the record's key
	Partition  int32  // where the record is
	Want       int32  // the room's partition (murmur2 of the room)
	Partitions int    // the topic's partition count Want was computed over
}

// Error reads "record outside its room's partition: room "r" is in
// partition 1 of 3 (murmur2), the record is in 2".
func (e *MisplacedError) Error() string {
	if e.Key != e.Room {
		return fmt.Sprintf("%v: key %q is not the event's room %q", ErrMisplaced, e.Key, e.Room)
	}
	return fmt.Sprintf("%v: room %q is in partition %d of %d (murmur2), the record is in %d; "+
		"its producer does not use the Kafka default partitioner (docs/producers.md)",
		ErrMisplaced, e.Room, e.Want, e.Partitions, e.Partition)
}

// Unwrap returns ErrMisplaced.
func (e *MisplacedError) Unwrap() error { return ErrMisplaced }

// ReasonOf is the one-word reason err refuses a record for: ReasonMisplaced,
// or the schemas.Reason of a decode error, or "" for neither.
func ReasonOf(err error) schemas.Reason {
	if errors.Is(err, ErrMisplaced) {
		return ReasonMisplaced
	}
	return schemas.ReasonOf(err)
}

// Placement decodes records and checks the placement rule over a topic's
// partition count: the one predicate every consumer uses, so a record is
// accepted or refused the same way everywhere. It is safe for concurrent
// use.
type Placement struct {
	codec      *schemas.Codec
	partitions int

	mu   sync.Mutex // guards part, which is not safe for concurrent use
	part RoomPartitioner
}

// NewPlacement returns the placement of info's topic, decoding with codec.
// The partition count is the topic's for good: growing it would move rooms
// and make earlier records misplaced.
func NewPlacement(codec *schemas.Codec, info TopicInfo) *Placement {
	return &Placement{codec: codec, partitions: int(info.Partitions), part: NewRoomPartitioner(info.Name)}
}

// DescribePlacement describes topic and returns its Placement.
func DescribePlacement(ctx context.Context, cl *kgo.Client, codec *schemas.Codec, topic string) (*Placement, error) {
	info, err := DescribeTopic(ctx, cl, topic)
	if err != nil {
		return nil, err
	}
	return NewPlacement(codec, info), nil
}

// Partitions is the partition count the rule is checked over.
func (p *Placement) Partitions() int { return p.partitions }

// Decode decodes r strictly (Decode) and checks that it is where its room
// lives. The error wraps a *schemas.DecodeError or a *MisplacedError; either
// way the record is refused for good (ReasonOf says why).
func (p *Placement) Decode(r *kgo.Record) (events.Record, error) {
	rec, err := Decode(p.codec, r)
	if err != nil {
		return rec, err
	}
	if err := p.Check(r, rec.Event.Env().Room); err != nil {
		return events.Record{Position: rec.Position}, fmt.Errorf("%s at %s: %w", r.Topic, rec.Position, err)
	}
	return rec, nil
}

// Check returns a *MisplacedError unless r, whose event is in room, is keyed
// by room and sits in room's partition.
func (p *Placement) Check(r *kgo.Record, room string) error {
	p.mu.Lock()
	want := p.part.Partition(room, p.partitions)
	p.mu.Unlock()
	if string(r.Key) == room && r.Partition == want {
		return nil
	}
	return &MisplacedError{Room: room, Key: string(r.Key), Partition: r.Partition, Want: want, Partitions: p.partitions}
}
