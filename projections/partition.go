package projections

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/rtstack/rtstack/events"
	"github.com/rtstack/rtstack/infra/kafka"
	"github.com/rtstack/rtstack/schemas"
)

// Headers a parked record carries besides its original ones.
const (
	HeaderParkError     = "park-error"     // why the record could not be decoded
	HeaderParkReason    = "park-reason"    // that reason in one word (schemas.Reason), e.g. trailing_bytes
	HeaderParkTopic     = "park-topic"     // where it came from
	HeaderParkPartition = "park-partition" // its partition, decimal
	HeaderParkOffset    = "park-offset"    // its offset, decimal
	HeaderParkBy        = "park-by"        // the projection that parked it
)

// errStopped: the partition was revoked (or the run ended) while a batch
// waited; the batch is not applied and the next owner resumes from the
// store's checkpoint.
var errStopped = errors.New("partition stopped")

// Backoff bounds for retrying a failed Apply or park.
const (
	minBackoff = 50 * time.Millisecond
	maxBackoff = 5 * time.Second
)

// partition folds the records of one partition into a Store: decode, park
// what cannot be decoded, apply the rest with the checkpoint, retry store
// errors with backoff until it succeeds or the partition is stopped.
type partition struct {
	id       int32
	name     string
	store    Store
	codec    *schemas.Codec
	maxBatch int
	// park copies an undecodable record to the parking topic; nil means
	// count and log only (a rebuild: the live projector parked it already).
	park func(ctx context.Context, r *kgo.Record, cause error) error
	log  *slog.Logger
	m    partitionMetrics

	next   atomic.Int64 // offset of the next record to apply, as the store has it
	lastTS atomic.Int64 // event time (ms) of the last applied event, 0 if none

	goods []events.Record // reused between batches
}

// process applies recs (ascending offsets) in chunks of maxBatch. Records
// below next are skipped. It returns nil once everything is applied, or
// errStopped / the context's error / an error wrapping ErrStoreReset (the
// rest of recs is not applied).
func (p *partition) process(ctx context.Context, recs []*kgo.Record, stop <-chan struct{}) (last *kgo.Record, err error) {
	for len(recs) > 0 {
		n := min(len(recs), p.maxBatch)
		l, err := p.processChunk(ctx, recs[:n], stop)
		if err != nil {
			return last, err
		}
		if l != nil {
			last = l
		}
		recs = recs[n:]
	}
	return last, nil
}

func (p *partition) processChunk(ctx context.Context, recs []*kgo.Record, stop <-chan struct{}) (*kgo.Record, error) {
	next := p.next.Load()
	goods := p.goods[:0]
	var last *kgo.Record
	for _, r := range recs {
		if r.Offset < next {
			continue
		}
		last = r
		rec, err := kafka.Decode(p.codec, r)
		if err != nil {
			if err := p.parkRecord(ctx, r, err, stop); err != nil {
				return nil, err
			}
			continue
		}
		goods = append(goods, rec)
	}
	p.goods = goods[:0]
	if last == nil {
		return nil, nil
	}
	to := last.Offset + 1
	for attempt := 1; ; attempt++ {
		start := time.Now()
		err := p.store.Apply(ctx, p.id, goods, to)
		if err == nil {
			p.m.latency.Observe(time.Since(start).Seconds())
			break
		}
		if errors.Is(err, ErrStoreReset) {
			// Retrying the batch would apply it on top of lost state: the
			// owner reloads the checkpoint and seeks (a rebuild fails).
			p.m.resets.Inc()
			return nil, fmt.Errorf("apply partition %d at offset %d: %w", p.id, recs[0].Offset, err)
		}
		p.m.errors.Inc()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		p.log.Warn("apply failed, retrying", "projection", p.name, "partition", p.id,
			"offset", recs[0].Offset, "records", len(goods), "attempt", attempt, "err", err)
		if !wait(ctx, stop, backoff(attempt)) {
			return nil, errStopped
		}
	}
	p.next.Store(to)
	p.m.applied.Add(float64(len(goods)))
	p.m.batch.Observe(float64(len(goods)))
	if len(goods) > 0 {
		ts := goods[len(goods)-1].Event.Env().Time
		p.lastTS.Store(ts)
		p.m.age.Set(ageSeconds(ts, time.Now()))
	}
	clear(goods) // drop event pointers so they can be collected
	return last, nil
}

func (p *partition) parkRecord(ctx context.Context, r *kgo.Record, cause error, stop <-chan struct{}) error {
	p.m.parked.Inc()
	p.log.Error("undecodable record", "projection", p.name, "partition", r.Partition,
		"offset", r.Offset, "err", cause, "parked", p.park != nil)
	if p.park == nil {
		return nil
	}
	for attempt := 1; ; attempt++ {
		err := p.park(ctx, r, cause)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		p.log.Warn("park failed, retrying", "partition", r.Partition, "offset", r.Offset, "attempt", attempt, "err", err)
		if !wait(ctx, stop, backoff(attempt)) {
			return errStopped
		}
	}
}

// parkedRecord is the copy of r sent to the parking topic.
func parkedRecord(parkTopic, projection string, r *kgo.Record, cause error) *kgo.Record {
	hs := make([]kgo.RecordHeader, 0, len(r.Headers)+6)
	hs = append(hs, r.Headers...)
	hs = append(hs,
		kgo.RecordHeader{Key: HeaderParkError, Value: []byte(cause.Error())},
		kgo.RecordHeader{Key: HeaderParkReason, Value: []byte(schemas.ReasonOf(cause))},
		kgo.RecordHeader{Key: HeaderParkTopic, Value: []byte(r.Topic)},
		kgo.RecordHeader{Key: HeaderParkPartition, Value: []byte(strconv.Itoa(int(r.Partition)))},
		kgo.RecordHeader{Key: HeaderParkOffset, Value: []byte(strconv.FormatInt(r.Offset, 10))},
		kgo.RecordHeader{Key: HeaderParkBy, Value: []byte(projection)},
	)
	return &kgo.Record{Topic: parkTopic, Key: r.Key, Value: r.Value, Headers: hs, Timestamp: r.Timestamp}
}

func backoff(attempt int) time.Duration {
	d := minBackoff << min(attempt-1, 10)
	return min(d, maxBackoff)
}

// wait sleeps d; false if ctx ended or stop closed first.
func wait(ctx context.Context, stop <-chan struct{}, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-stop:
		return false
	case <-t.C:
		return true
	}
}

func checkpointsRetry(ctx context.Context, s Store, log *slog.Logger) (map[int32]int64, error) {
	for attempt := 1; ; attempt++ {
		cps, err := s.Checkpoints(ctx)
		if err == nil {
			return cps, nil
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("read checkpoints of %s: %w", s.Name(), ctx.Err())
		}
		log.Warn("read checkpoints failed, retrying", "projection", s.Name(), "attempt", attempt, "err", err)
		if !wait(ctx, nil, backoff(attempt)) {
			return nil, fmt.Errorf("read checkpoints of %s: %w", s.Name(), err)
		}
	}
}
