// Package kafkatest starts an embedded broker for tests, reached over real
// TCP like any Kafka cluster.
package kafkatest

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/rtstack/rtstack/events"
	"github.com/rtstack/rtstack/infra/kafka"
	"github.com/rtstack/rtstack/schemas"
)

// Broker starts an embedded broker on a free loopback port, persisting under
// dir (a fresh temp dir when empty), closed when the test ends.
func Broker(t testing.TB, dir string) *kafka.Broker {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	b, err := kafka.StartBroker(kafka.BrokerConfig{Addr: "127.0.0.1:0", DataDir: dir})
	if err != nil {
		t.Fatalf("embedded broker: %v", err)
	}
	t.Cleanup(b.Close)
	return b
}

// Client returns a client of addr, closed when the test ends.
func Client(t testing.TB, addr string, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kafka.NewClient(kafka.ClientConfig{Brokers: []string{addr}, DeliveryTimeout: 5 * time.Second}, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// Topic creates topic with partitions on addr.
func Topic(t testing.TB, addr, topic string, partitions int32) kafka.TopicInfo {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	info, err := kafka.EnsureTopic(ctx, Client(t, addr), topic, partitions)
	if err != nil {
		t.Fatal(err)
	}
	return info
}

// Codec returns the codec of the embedded schemas.
func Codec(t testing.TB) *schemas.Codec {
	t.Helper()
	reg, err := schemas.Embedded()
	if err != nil {
		t.Fatal(err)
	}
	return schemas.NewCodec(reg)
}

// Log is the preamble most log tests repeat: an embedded broker, one topic,
// a client and the codec. Its helpers fail the test on error.
type Log struct {
	Addr   string
	Topic  string
	Client *kgo.Client
	Codec  *schemas.Codec
}

// NewLog starts a broker with topic (partitions partitions) and returns its
// Log; opts configure the client (e.g. kgo.MaxBufferedRecords for a big
// produce).
func NewLog(t testing.TB, topic string, partitions int32, opts ...kgo.Opt) *Log {
	t.Helper()
	b := Broker(t, "")
	Topic(t, b.Addr(), topic, partitions)
	return &Log{Addr: b.Addr(), Topic: topic, Client: Client(t, b.Addr(), opts...), Codec: Codec(t)}
}

// Ends returns the end offset of every partition.
func (l *Log) Ends(t testing.TB) map[int32]int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ends, err := kafka.EndOffsets(ctx, l.Client, l.Topic)
	if err != nil {
		t.Fatal(err)
	}
	return ends
}

// Produce appends evs (asynchronously, keyed by room as the log is) and
// waits for every ack; it returns each event's position.
func (l *Log) Produce(t testing.TB, evs []events.Event) []events.Position {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	pos := make([]events.Position, len(evs))
	var mu sync.Mutex
	var first error
	for i, ev := range evs {
		rec, err := kafka.NewRecord(l.Codec, l.Topic, ev)
		if err != nil {
			t.Fatal(err)
		}
		l.Client.Produce(ctx, rec, func(r *kgo.Record, err error) {
			mu.Lock()
			defer mu.Unlock()
			if err != nil && first == nil {
				first = err
			}
			pos[i] = events.Position{Partition: r.Partition, Offset: r.Offset}
		})
	}
	if err := l.Client.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if first != nil {
		t.Fatalf("produce: %v", first)
	}
	return pos
}

// ProduceMisplaced writes ev as NewRecord lays it out, but into a partition
// of topic (partitions partitions) other than its room's, as a producer
// with another partitioner than murmur2 would; it returns the record's
// position.
func ProduceMisplaced(t testing.TB, addr, topic string, partitions int32, codec *schemas.Codec, ev events.Event) events.Position {
	t.Helper()
	rec, err := kafka.NewRecord(codec, topic, ev)
	if err != nil {
		t.Fatal(err)
	}
	room := kafka.NewRoomPartitioner(topic).Partition(ev.Env().Room, int(partitions))
	rec.Partition = (room + 1) % partitions
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r, err := Client(t, addr, kgo.RecordPartitioner(kgo.ManualPartitioner())).ProduceSync(ctx, rec).First()
	if err != nil {
		t.Fatal(err)
	}
	return events.Position{Partition: r.Partition, Offset: r.Offset}
}

// GroupLag is group's total lag on topic as admin tools compute it (kadm,
// like kafka-consumer-groups: end offset minus committed offset, the whole
// partition where nothing is committed), or -1 while the group or a
// partition's offsets cannot be read.
func GroupLag(t testing.TB, cl *kgo.Client, group, topic string) int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	lags, err := kadm.NewClient(cl).Lag(ctx, group)
	if err != nil {
		return -1
	}
	l, ok := lags[group]
	if !ok || l.Error() != nil {
		return -1
	}
	var total int64
	for _, pl := range l.Lag[topic] {
		if pl.Err != nil || pl.Lag < 0 {
			return -1
		}
		total += pl.Lag
	}
	if len(l.Lag[topic]) == 0 {
		return -1 // nothing committed on topic yet
	}
	return total
}
