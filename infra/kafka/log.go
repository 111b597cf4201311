package kafka

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/plugin/kotel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/rtstack/rtstack/events"
	"github.com/rtstack/rtstack/infra/telemetry"
	"github.com/rtstack/rtstack/schemas"
)

// Log appends events to the chat log. It is safe for concurrent use; the
// caller owns the client and closes it after the last Append returned.
//
// Appends go to the producer in flights: while one flight's records are
// unanswered, new appends wait, then go together as the next one. Left to
// itself the idempotent producer keeps up to five produce requests in
// flight to a broker, each carrying what arrived since the previous one;
// a broker that syncs each request to disk before answering (the embedded
// one does) then answers the fifth only after five syncs. One flight at a
// time carries the same records in fewer, fuller requests, each answered
// after about one sync. An idle log adds no wait.
type Log struct {
	cl    *kgo.Client
	codec *schemas.Codec
	topic string

	mu     sync.Mutex // guards held and flying
	space  *sync.Cond // on mu: broadcast when the held records leave as a flight
	held   []heldRecord
	flying int // records of the flight under way not answered yet
}

// maxHeld bounds the appends held for the next flight, as the producer's
// own buffer (kgo's MaxBufferedRecords default) bounds what it holds: past
// it AppendAsync waits, so a broker that does not answer backs the callers
// up instead of growing the queue.
const maxHeld = 10000

// heldRecord is an append waiting for the flight under way.
type heldRecord struct {
	rec     *kgo.Record
	promise func(*kgo.Record, error)
}

// NewLog returns an appender writing to topic through cl.
func NewLog(cl *kgo.Client, codec *schemas.Codec, topic string) *Log {
	l := &Log{cl: cl, codec: codec, topic: topic}
	l.space = sync.NewCond(&l.mu)
	return l
}

// Append writes ev and returns its position once the broker acknowledged it
// (acks=all). An error means the client must not be told the event exists;
// the event may still have reached the log (a timeout after the broker wrote
// it), which is why commands carry idempotency keys.
func (l *Log) Append(ctx context.Context, ev events.Event) (events.Position, error) {
	type outcome struct {
		pos events.Position
		err error
	}
	ch := make(chan outcome, 1)
	l.AppendAsync(ctx, ev, func(pos events.Position, err error) { ch <- outcome{pos, err} })
	o := <-ch // the producer answers every record: at ctx's end or its delivery timeout at the latest
	return o.pos, o.err
}

// AppendAsync is Append without the wait: it hands the record to the
// producer (or to the next flight) and returns; done gets the outcome on
// the producer's promise goroutine and must not block. Flights keep the
// order of the appends, the idempotent producer keeps it per partition,
// and a room is one partition (the room is the key), so appends issued one
// after another for a room land in that order. It blocks only while the
// producer's buffer, or the next flight (maxHeld), is full.
func (l *Log) AppendAsync(ctx context.Context, ev events.Event, done func(events.Position, error)) {
	rec, err := l.record(ctx, ev)
	if err != nil {
		done(events.Position{}, err)
		return
	}
	promise := func(r *kgo.Record, err error) {
		done(l.outcome(ev, r, err))
		l.landed()
	}
	l.mu.Lock()
	for l.flying > 0 && len(l.held) >= maxHeld {
		l.space.Wait()
	}
	if l.flying > 0 {
		l.held = append(l.held, heldRecord{rec, promise})
		l.mu.Unlock()
		return
	}
	l.flying = 1
	l.mu.Unlock()
	l.cl.Produce(ctx, rec, promise)
}

// landed counts one record of the flight answered; the last one sends the
// appends held meanwhile as the next flight.
func (l *Log) landed() {
	l.mu.Lock()
	l.flying--
	if l.flying > 0 || len(l.held) == 0 {
		l.mu.Unlock()
		return
	}
	next := l.held
	l.held, l.flying = nil, len(next)
	l.space.Broadcast()
	l.mu.Unlock()
	// Not in this promise: Produce may block on a full buffer, which only
	// promises free. The goroutine ends once the flight is handed over.
	go func() {
		for _, h := range next {
			l.cl.Produce(h.rec.Context, h.rec, h.promise)
		}
	}()
}

// record is ev's record carrying ctx: the action's trace context travels
// in a traceparent header even with tracing off; with it on, kotel's
// publish span (a child of ctx) replaces it.
func (l *Log) record(ctx context.Context, ev events.Event) (*kgo.Record, error) {
	rec, err := NewRecord(l.codec, l.topic, ev)
	if err != nil {
		return nil, err
	}
	telemetry.Propagator().Inject(ctx, kotel.NewRecordCarrier(rec))
	rec.Context = ctx
	return rec, nil
}

func (l *Log) outcome(ev events.Event, r *kgo.Record, err error) (events.Position, error) {
	if err != nil {
		return events.Position{}, fmt.Errorf("append %s to %s: %w", ev.Type(), l.topic, err)
	}
	return events.Position{Partition: r.Partition, Offset: r.Offset}, nil
}

// NewRecord encodes ev as a record of topic: key = room, value = wire format,
// headers naming its type and id.
func NewRecord(codec *schemas.Codec, topic string, ev events.Event) (*kgo.Record, error) {
	value, err := codec.Encode(ev)
	if err != nil {
		return nil, err
	}
	env := ev.Env()
	return &kgo.Record{
		Topic: topic,
		Key:   []byte(env.Room),
		Value: value,
		Headers: []kgo.RecordHeader{
			{Key: HeaderEventType, Value: []byte(ev.Type())},
			{Key: HeaderEventID, Value: []byte(env.ID)},
		},
	}, nil
}

// Decode turns a fetched record into an event with its position, through
// schemas.Codec.Decode with the record's event-type header, so every
// consumer refuses the same records. Errors wrap a *schemas.DecodeError
// (and so schemas.ErrMalformed or schemas.ErrUnknownSchema): the record can
// never be decoded by this binary and belongs in the parking topic.
func Decode(codec *schemas.Codec, r *kgo.Record) (events.Record, error) {
	pos := events.Position{Partition: r.Partition, Offset: r.Offset}
	ev, err := codec.Decode(r.Value, string(EventType(r)))
	if err != nil {
		return events.Record{Position: pos}, fmt.Errorf("decode %s at %s: %w", r.Topic, pos, err)
	}
	return events.Record{Position: pos, Event: ev}, nil
}

// IsRetryable reports whether err from an append or fetch is worth retrying
// (the broker is away or busy) rather than a permanent failure.
func IsRetryable(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, context.Canceled) {
		return false
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, kgo.ErrRecordTimeout) {
		return true
	}
	var ke *kerr.Error
	if errors.As(err, &ke) {
		return ke.Retriable
	}
	return kgo.IsRetryableBrokerErr(err)
}

// TraceContext returns ctx carrying the trace of the action that wrote r:
// the receive span kotel started for it when tracing is on, else the
// traceparent header's span context (none if it has no header).
func TraceContext(ctx context.Context, r *kgo.Record) context.Context {
	if r.Context != nil {
		if sc := trace.SpanContextFromContext(r.Context); sc.IsValid() {
			return trace.ContextWithSpanContext(ctx, sc)
		}
	}
	return telemetry.Propagator().Extract(ctx, kotel.NewRecordCarrier(r))
}

// PartitionAttr and OffsetAttr are a record's position as span attributes,
// named as OpenTelemetry's messaging conventions name them.
func PartitionAttr(p int32) attribute.KeyValue {
	return attribute.Int("messaging.destination.partition.id", int(p))
}

func OffsetAttr(o int64) attribute.KeyValue { return attribute.Int64("messaging.kafka.offset", o) }
