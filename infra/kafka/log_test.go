package kafka_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/rtstack/rtstack/events"
	"github.com/rtstack/rtstack/infra/kafka"
	"github.com/rtstack/rtstack/infra/kafka/kafkatest"
	"github.com/rtstack/rtstack/internal/testsvc"
	"github.com/rtstack/rtstack/schemas"
)

func TestAppendSurvivesBrokerRestart(t *testing.T) {
	testsvc.Integration(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dir := t.TempDir()
	codec := kafkatest.Codec(t)

	appendN := func(b *kafka.Broker, from, n int) []events.Position {
		info := kafkatest.Topic(t, b.Addr(), kafka.DefaultTopic, 3)
		if info.Partitions != 3 {
			t.Fatalf("topic has %d partitions, want 3", info.Partitions)
		}
		log := kafka.NewLog(kafkatest.Client(t, b.Addr()), codec, kafka.DefaultTopic)
		var out []events.Position
		for i := from; i < from+n; i++ {
			ev := &events.MessageSent{Envelope: events.Envelope{ID: fmt.Sprint("e", i), Room: "room-1", User: "u", Time: int64(i)}, MessageID: fmt.Sprint("m", i), Text: "hi"}
			pos, err := log.Append(ctx, ev)
			if err != nil {
				t.Fatalf("append %d: %v", i, err)
			}
			out = append(out, pos)
		}
		return out
	}

	b := kafkatest.Broker(t, dir)
	first := appendN(b, 0, 5)
	id1 := kafkatest.Topic(t, b.Addr(), kafka.DefaultTopic, 3).ID
	b.Close()

	b2 := kafkatest.Broker(t, dir)
	second := appendN(b2, 5, 5)
	if id2 := kafkatest.Topic(t, b2.Addr(), kafka.DefaultTopic, 3).ID; id2 != id1 {
		t.Errorf("topic id changed across restart: %s → %s", id1, id2)
	}
	last := first[len(first)-1]
	if second[0].Partition != last.Partition || second[0].Offset != last.Offset+1 {
		t.Fatalf("offsets do not continue after restart: last %v, next %v", last, second[0])
	}

	cl := kafkatest.Client(t, b2.Addr(), kgo.ConsumeTopics(kafka.DefaultTopic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	var got []events.Record
	for len(got) < 10 {
		fs := cl.PollFetches(ctx)
		if err := fs.Err0(); err != nil {
			t.Fatal(err)
		}
		fs.EachRecord(func(r *kgo.Record) {
			if string(r.Key) != "room-1" || len(r.Headers) < 2 || r.Headers[0].Key != kafka.HeaderEventType || string(r.Headers[0].Value) != "MessageSent" {
				t.Errorf("record at %d: key %q headers %v", r.Offset, r.Key, r.Headers)
			}
			rec, err := kafka.Decode(codec, r)
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, rec)
		})
	}
	for i, r := range got {
		if want := fmt.Sprint("m", i); r.Event.(*events.MessageSent).MessageID != want {
			t.Fatalf("record %d is %s, want %s (order lost)", i, r.Event.(*events.MessageSent).MessageID, want)
		}
	}
}

func TestAppendFailsWhenBrokerIsGone(t *testing.T) {
	testsvc.Integration(t)
	b := kafkatest.Broker(t, "")
	kafkatest.Topic(t, b.Addr(), kafka.DefaultTopic, 1)
	cl, err := kafka.NewClient(kafka.ClientConfig{Brokers: []string{b.Addr()}, DeliveryTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	log := kafka.NewLog(cl, kafkatest.Codec(t), kafka.DefaultTopic)
	b.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err = log.Append(ctx, &events.MemberJoined{Envelope: events.Envelope{ID: "e", Room: "r", User: "u"}})
	if err == nil {
		t.Fatal("append acknowledged with the broker gone")
	}
	if !kafka.IsRetryable(err) {
		t.Errorf("broker gone should be retryable: %v", err)
	}
}

// Decode hands the record's event-type header to the codec, so a record
// whose header disagrees with its schema is refused by every consumer alike.
func TestDecodeChecksTheEventTypeHeader(t *testing.T) {
	codec := kafkatest.Codec(t)
	r, err := kafka.NewRecord(codec, kafka.DefaultTopic, &events.MessageSent{Envelope: events.Envelope{ID: "e", Room: "r", User: "u"}, MessageID: "m"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kafka.Decode(codec, r); err != nil {
		t.Fatalf("own record: %v", err)
	}
	r.Headers[0].Value = []byte(events.TypeMemberJoined)
	if _, err := kafka.Decode(codec, r); schemas.ReasonOf(err) != schemas.ReasonTypeMismatch {
		t.Fatalf("mismatched header: %v, want %s", err, schemas.ReasonTypeMismatch)
	}
	r.Headers = r.Headers[1:] // header absent: the schema decides
	if rec, err := kafka.Decode(codec, r); err != nil || rec.Event.Type() != events.TypeMessageSent {
		t.Fatalf("no header: %v, %v", rec, err)
	}
}

// Appends issued while a flight is unanswered go in the next one: every
// append is answered, a room's land in the order issued, and an Append
// between them waits its turn in the flights too.
func TestAppendAsyncFlightsKeepOrder(t *testing.T) {
	testsvc.Integration(t)
	b := kafkatest.Broker(t, "")
	kafkatest.Topic(t, b.Addr(), kafka.DefaultTopic, 3)
	log := kafka.NewLog(kafkatest.Client(t, b.Addr()), kafkatest.Codec(t), kafka.DefaultTopic)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	const rooms, each = 4, 100
	type landed struct {
		room string
		seq  int
		pos  events.Position
	}
	results := make(chan landed, rooms*each)
	for i := range each {
		for r := range rooms {
			room := fmt.Sprint("room-", r)
			ev := &events.MessageSent{Envelope: events.Envelope{ID: fmt.Sprint("e", r, "-", i), Room: room, User: "u"}, MessageID: fmt.Sprint("m", i), Text: "hi"}
			log.AppendAsync(ctx, ev, func(pos events.Position, err error) {
				if err != nil {
					t.Errorf("append %s #%d: %v", room, i, err)
				}
				results <- landed{room, i, pos}
			})
		}
		if i == each/2 {
			if _, err := log.Append(ctx, &events.MemberJoined{Envelope: events.Envelope{ID: "sync", Room: "room-0", User: "v"}}); err != nil {
				t.Fatalf("Append amid the flights: %v", err)
			}
		}
	}
	last := map[string]landed{}
	for range rooms * each {
		var l landed
		select {
		case l = <-results:
		case <-ctx.Done():
			t.Fatal("appends unanswered")
		}
		if prev, ok := last[l.room]; ok && (l.pos.Partition != prev.pos.Partition || (l.seq > prev.seq) != (l.pos.Offset > prev.pos.Offset)) {
			t.Fatalf("%s: #%d at %v, #%d at %v: not in issue order", l.room, prev.seq, prev.pos, l.seq, l.pos)
		}
		last[l.room] = l
	}
}
