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
	"github.com/rtstack/rtstack/infra/telemetry"
	"github.com/rtstack/rtstack/internal/retry"
)

// Headers a parked record carries besides its original ones.
const (
	HeaderParkError     = "park-error"     // why the record was refused: it does not decode, or it is misplaced
	HeaderParkReason    = "park-reason"    // that reason in one word (kafka.ReasonOf), e.g. trailing_bytes, misplaced
	HeaderParkTopic     = "park-topic"     // where it came from
	HeaderParkPartition = "park-partition" // its partition, decimal
	HeaderParkOffset    = "park-offset"    // its offset, decimal
	HeaderParkBy        = "park-by"        // the projection that parked it: each parks its own copy
)

// errStopped: the partition was revoked (or the run ended) while a batch
// waited; the batch is not applied and the next owner resumes from the
// store's checkpoint.
var errStopped = errors.New("partition stopped")

// Backoff bounds for retrying a failed Apply, park or checkpoint read.
const (
	minBackoff = 50 * time.Millisecond
	maxBackoff = 5 * time.Second
)

func newBackoff() retry.Backoff { return retry.Backoff{Min: minBackoff, Max: maxBackoff} }

// ErrPermanent: the store (or the parking topic) refused a batch with an
// error that retrying the same batch cannot fix (the store's Classifier, or
// kafka.IsRetryable for the parking topic, said so; ErrLogChanged and
// ErrOtherLog always are). The partition stops instead of retrying forever: the live projector's
// Run returns an error wrapping it, a rebuild fails with it. Fix the cause
// (usually a bug: the edge let through what the store refuses) and start
// again; the partition resumes at its checkpoint.
var ErrPermanent = errors.New("permanent failure: retrying cannot fix it")

// Classifier is implemented by stores that can tell a failure worth
// retrying (the store is away, busy, or a transaction lost a race) from one
// that retrying the same batch cannot fix (a value the store refuses, a
// missing table). Optional: without it every Apply error is retried.
type Classifier interface {
	Retryable(err error) bool
}

// permanent reports whether err from s.Apply cannot be fixed by retrying.
func permanent(s Store, err error) bool {
	if boundElsewhere(err) {
		return true
	}
	c, ok := s.(Classifier)
	return ok && !c.Retryable(err)
}

// applier folds the records of one partition into a Store: decode, park
// what cannot be decoded or is misplaced, apply the rest with the checkpoint, retry store
// errors with backoff until it succeeds, the partition is stopped, or the
// error is permanent.
type applier struct {
	id       int32
	name     string
	store    Store
	place    *kafka.Placement // decodes and checks the placement rule
	maxBatch int
	// park copies a refused record to the parking topic; nil means
	// count and log only (a rebuild: the live projector parked it already).
	park func(ctx context.Context, r *kgo.Record, cause error) error
	log  *slog.Logger
	m    partitionMetrics

	next   atomic.Int64 // offset of the next record to apply, as the store has it
	lastTS atomic.Int64 // event time (ms) of the last applied event, 0 if none

	goods []events.Record // reused between batches

	// cut, if set, ends the partition at a point of the log (an as-of
	// rebuild): records from cut.limit on are not applied.
	cut *partitionCut
}

// partitionCut is where an as-of rebuild stops reading one partition.
type partitionCut struct {
	limit atomic.Int64 // first offset not applied
	// byTime: the first record whose event time is after timeMS moves
	// limit down to its offset.
	byTime bool
	timeMS int64
}

// after reports whether rec is past a time cut, and if so ends the
// partition at it. A nil cut cuts nothing.
func (c *partitionCut) after(r *kgo.Record, rec events.Record) bool {
	if c == nil || !c.byTime || rec.Event.Env().Time <= c.timeMS {
		return false
	}
	c.limit.Store(r.Offset)
	return true
}

// process applies recs (ascending offsets) in chunks of maxBatch. Records
// below next are skipped. It returns nil once everything is applied, or
// errStopped / the context's error / an error wrapping ErrStoreReset or
// ErrPermanent (the rest of recs is not applied).
func (a *applier) process(ctx context.Context, recs []*kgo.Record, stop <-chan struct{}) (last *kgo.Record, err error) {
	for len(recs) > 0 {
		n := min(len(recs), a.maxBatch)
		l, err := a.processChunk(ctx, recs[:n], stop)
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

func (a *applier) processChunk(ctx context.Context, recs []*kgo.Record, stop <-chan struct{}) (*kgo.Record, error) {
	next := a.next.Load()
	goods := a.goods[:0]
	var last *kgo.Record
	for _, r := range recs {
		if r.Offset < next {
			continue
		}
		if a.cut != nil && r.Offset >= a.cut.limit.Load() {
			break
		}
		rec, err := a.place.Decode(r)
		if err != nil {
			last = r
			if err := a.parkRecord(ctx, r, err, stop); err != nil {
				return nil, err
			}
			continue
		}
		if a.cut.after(r, rec) {
			break
		}
		last = r
		goods = append(goods, rec)
	}
	a.goods = goods[:0]
	if last == nil {
		return nil, nil
	}
	to := last.Offset + 1
	spans := a.startSpans(ctx, recs, next)
	err := a.applyRetrying(ctx, goods, recs[0].Offset, to, stop)
	telemetry.EndSpans(spans, err)
	if err != nil {
		return nil, err
	}
	a.next.Store(to)
	a.m.applied.Add(float64(len(goods)))
	a.m.batch.Observe(float64(len(goods)))
	if len(goods) > 0 {
		ts := goods[len(goods)-1].Event.Env().Time
		a.lastTS.Store(ts)
		a.m.age.Set(ageSeconds(ts, time.Now()))
	}
	clear(goods) // drop event pointers so they can be collected
	return last, nil
}

// applyRetrying applies goods with checkpoint to, retrying with backoff
// until it succeeds; first is the batch's first offset, for errors and logs.
func (a *applier) applyRetrying(ctx context.Context, goods []events.Record, first, to int64, stop <-chan struct{}) error {
	backoff := newBackoff()
	for {
		start := time.Now()
		err := a.store.Apply(ctx, a.id, goods, to)
		if err == nil {
			a.m.latency.Observe(time.Since(start).Seconds())
			return nil
		}
		if errors.Is(err, ErrStoreReset) {
			// Retrying the batch would apply it on top of lost state: the
			// owner reloads the checkpoint and seeks (a rebuild fails).
			a.m.resets.Inc()
			return fmt.Errorf("apply partition %d at offset %d: %w", a.id, first, err)
		}
		a.m.errors.Inc()
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if permanent(a.store, err) {
			a.log.Error("apply failed permanently; the partition stops", "projection", a.name, "partition", a.id,
				"offset", first, "records", len(goods), "err", err)
			return fmt.Errorf("apply partition %d at offset %d: %w: %w", a.id, first, ErrPermanent, err)
		}
		a.log.Warn("apply failed, retrying", "projection", a.name, "partition", a.id,
			"offset", first, "records", len(goods), "attempt", backoff.Attempt()+1, "err", err)
		if !backoff.Wait(ctx, stop) {
			return errStopped
		}
	}
}

func (a *applier) parkRecord(ctx context.Context, r *kgo.Record, cause error, stop <-chan struct{}) error {
	reason := kafka.ReasonOf(cause)
	a.m.parked(reason).Inc()
	a.log.Error("refused record", "projection", a.name, "partition", r.Partition,
		"offset", r.Offset, "reason", reason, "err", cause, "parked", a.park != nil)
	if a.park == nil {
		return nil
	}
	backoff := newBackoff()
	for {
		err := a.park(ctx, r, cause)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if !kafka.IsRetryable(err) {
			a.log.Error("park failed permanently; the partition stops", "partition", r.Partition, "offset", r.Offset, "err", err)
			return fmt.Errorf("park %d@%d: %w: %w", r.Partition, r.Offset, ErrPermanent, err)
		}
		a.log.Warn("park failed, retrying", "partition", r.Partition, "offset", r.Offset, "attempt", backoff.Attempt()+1, "err", err)
		if !backoff.Wait(ctx, stop) {
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
		kgo.RecordHeader{Key: HeaderParkReason, Value: []byte(kafka.ReasonOf(cause))},
		kgo.RecordHeader{Key: HeaderParkTopic, Value: []byte(r.Topic)},
		kgo.RecordHeader{Key: HeaderParkPartition, Value: []byte(strconv.Itoa(int(r.Partition)))},
		kgo.RecordHeader{Key: HeaderParkOffset, Value: []byte(strconv.FormatInt(r.Offset, 10))},
		kgo.RecordHeader{Key: HeaderParkBy, Value: []byte(projection)},
	)
	return &kgo.Record{Topic: parkTopic, Key: r.Key, Value: r.Value, Headers: hs, Timestamp: r.Timestamp}
}

func checkpointsRetry(ctx context.Context, s Store, log *slog.Logger) (map[int32]int64, error) {
	backoff := newBackoff()
	for {
		cps, err := s.Checkpoints(ctx)
		if err == nil {
			return cps, nil
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("read checkpoints of %s: %w", s.Name(), ctx.Err())
		}
		log.Warn("read checkpoints failed, retrying", "projection", s.Name(), "attempt", backoff.Attempt()+1, "err", err)
		if !backoff.Wait(ctx, nil) {
			return nil, fmt.Errorf("read checkpoints of %s: %w", s.Name(), err)
		}
	}
}

// fetched is one partition's records from one poll.
type fetched struct {
	gen  uint64 // the live projector's seek generation; always 0 in a rebuild
	recs []*kgo.Record
}

// gather is the drain loop both the live projector and a rebuild use:
// buf (reset) gets first, then every batch already queued on in, while
// below maxBatch, so a replay applies thousands of records at once and
// live traffic one or a few. Batches of a generation other than gen were
// fetched before a re-seek and are dropped.
func gather(buf, first []*kgo.Record, in <-chan fetched, gen uint64, maxBatch int) []*kgo.Record {
	buf = append(buf[:0], first...)
	for len(buf) < maxBatch {
		select {
		case f := <-in:
			if f.gen == gen {
				buf = append(buf, f.recs...)
			}
		default:
			return buf
		}
	}
	return buf
}
