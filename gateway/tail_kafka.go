package gateway

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/rtstack/rtstack/infra/kafka"
	"github.com/rtstack/rtstack/internal/retry"
)

// pollRecords bounds one fanout batch: the hub lock is held for a batch,
// and a batch lands in each subscriber's queue at once, so it stays well
// under Config.SendQueue (a quarter of it, 16 to 256 records).
func (s *Server) pollRecords() int {
	return min(max(s.cfg.SendQueue/4, 16), 256)
}

// errRecreated: the topic's id changed under the tail.
var errRecreated = errors.New("topic was recreated")

// Run tails every partition of the log (direct partition consumption, no
// consumer group: every gateway reads everything) from the live end and
// fans each record out to the rooms' connections in log order. While the
// broker is away it keeps retrying. It returns nil when ctx is cancelled,
// after its goroutines stopped; connections stay up until Shutdown.
func (s *Server) Run(ctx context.Context) error {
	admin, err := kafka.NewClient(s.cfg.Kafka)
	if err != nil {
		return fmt.Errorf("gateway: %w", err)
	}
	defer admin.Close()
	s.admin.Store(admin)
	info, next, ok := s.locate(ctx, admin)
	if !ok {
		return nil
	}
	s.place.Store(kafka.NewPlacement(s.cfg.Codec, info))
	s.hub.start(info.Name, info.ID, next)
	s.readyOnce.Do(func() { close(s.ready) })
	s.log.Info("tailing the log", "topic", info.Name, "partitions", info.Partitions, "topic_id", info.ID)

	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() { s.boardLoop(ctx) })

	for {
		err := s.tail(ctx, admin, info, next)
		if ctx.Err() != nil {
			return nil
		}
		if !errors.Is(err, errRecreated) {
			return err
		}
		// A new log: positions of the old one mean nothing. Every room is
		// told to resync and the tail starts over at the new log's end.
		info, next, ok = s.locate(ctx, admin)
		if !ok {
			return nil
		}
		s.log.Warn("the log was recreated; every room resyncs", "topic", info.Name, "topic_id", info.ID)
		s.place.Store(kafka.NewPlacement(s.cfg.Codec, info))
		for c, rooms := range s.hub.resyncAll("log_recreated", info.ID, next) {
			for _, r := range rooms {
				s.presenceLeave(r, c)
			}
		}
	}
}

// locate waits until the topic exists and returns its description and end
// offsets; ok is false when ctx ended first.
func (s *Server) locate(ctx context.Context, admin *kgo.Client) (kafka.TopicInfo, []int64, bool) {
	backoff := retry.Backoff{Min: 200 * time.Millisecond, Max: 5 * time.Second}
	for {
		info, ends, err := s.describe(ctx, admin)
		if err == nil {
			return info, ends, true
		}
		if ctx.Err() != nil {
			return kafka.TopicInfo{}, nil, false
		}
		s.log.Warn("log not reachable, retrying", "topic", s.cfg.Topic, "err", err)
		if !backoff.Wait(ctx, nil) {
			return kafka.TopicInfo{}, nil, false
		}
	}
}

func (s *Server) describe(ctx context.Context, admin *kgo.Client) (kafka.TopicInfo, []int64, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	info, err := kafka.DescribeTopic(ctx, admin, s.cfg.Topic)
	if err != nil {
		return info, nil, err
	}
	ends, err := kafka.EndOffsets(ctx, admin, s.cfg.Topic)
	if err != nil {
		return info, nil, err
	}
	next := make([]int64, info.Partitions)
	for p := range next {
		off, ok := ends[int32(p)]
		if !ok {
			return info, nil, fmt.Errorf("no end offset for partition %d", p)
		}
		next[p] = off
	}
	return info, next, nil
}

// tail consumes every partition from next until ctx ends or the topic is
// recreated.
func (s *Server) tail(ctx context.Context, admin *kgo.Client, info kafka.TopicInfo, next []int64) error {
	parts := map[int32]kgo.Offset{}
	for p, off := range next {
		parts[int32(p)] = kgo.NewOffset().At(off)
	}
	cl, err := kafka.NewClient(s.cfg.Kafka,
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{info.Name: parts}),
		kgo.FetchMaxWait(100*time.Millisecond),
	)
	if err != nil {
		return fmt.Errorf("gateway tail: %w", err)
	}
	defer cl.Close()
	lastCheck := time.Now()
	batch := make([]delivery, 0, 1024)
	for {
		fs := cl.PollRecords(ctx, s.pollRecords())
		if ctx.Err() != nil {
			return ctx.Err()
		}
		fs.EachError(func(topic string, p int32, err error) {
			if !errors.Is(err, context.Canceled) {
				s.m.tailErrors.Inc()
				s.log.Warn("tail fetch", "topic", topic, "partition", p, "err", err)
			}
		})
		batch = batch[:0]
		var oldest time.Time
		fs.EachRecord(func(r *kgo.Record) {
			if oldest.IsZero() || r.Timestamp.Before(oldest) {
				oldest = r.Timestamp
			}
			batch = append(batch, s.toDelivery(r))
		})
		if len(batch) > 0 {
			delivered, dups := s.hub.fanout(batch)
			s.m.fanoutSeconds.Observe(time.Since(oldest).Seconds())
			s.m.deliveries.Add(float64(delivered))
			if dups > 0 {
				s.m.drops.WithLabelValues("duplicate").Add(float64(dups))
			}
			clear(batch)
		}
		if time.Since(lastCheck) >= s.cfg.TopicCheckInterval {
			lastCheck = time.Now()
			cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			now, err := kafka.DescribeTopic(cctx, admin, info.Name)
			cancel()
			if err == nil && now.ID != "" && info.ID != "" && now.ID != info.ID {
				return errRecreated
			}
		}
	}
}

// toDelivery decodes a record and encodes its client frame once. A record
// that cannot be decoded, or is outside its room's partition, still
// advances the position but is shown to nobody, counted by reason (the
// projectors park it): a misplaced record is not in the room's history, so
// neither live delivery nor a `since` recovery (which reads only the room's
// partition) ever shows it.
func (s *Server) toDelivery(r *kgo.Record) delivery {
	d := delivery{partition: r.Partition, offset: r.Offset}
	rec, err := s.place.Load().Decode(r)
	if err != nil {
		reason := kafka.ReasonOf(err)
		drop := "undecodable"
		if reason == kafka.ReasonMisplaced {
			drop = string(reason)
		}
		s.m.drops.WithLabelValues(drop).Inc()
		s.log.Error("record not delivered", "partition", r.Partition, "offset", r.Offset, "reason", reason, "err", err)
		return d
	}
	d.room = rec.Event.Env().Room
	d.frame, d.messageID, err = encodeEvent(rec)
	if err != nil {
		s.log.Error("encode frame", "partition", r.Partition, "offset", r.Offset, "err", err)
	}
	return d
}

// waitReady waits (bounded) for Run to know the log.
func (s *Server) waitReady() bool {
	select {
	case <-s.ready:
		return true
	case <-time.After(s.cfg.RecoveryTimeout):
		return false
	}
}

// Resync reasons.
const (
	ReasonTooOld         = "too_old"         // older than RecoveryWindow or no longer in the log
	ReasonWrongPartition = "wrong_partition" // the position is not in the room's partition
	ReasonBeyondEnd      = "beyond_end"      // the position is past the end of the log
	ReasonLogRecreated   = "log_recreated"   // the topic was deleted and created again
	ReasonOverflow       = "overflow"        // too much arrived during the recovery
)

// checkSince decides whether a join's since can be served from the log.
// reason is non-empty when the client must resync instead.
func (s *Server) checkSince(room string, since sincePos) (from int64, reason string, err error) {
	p, next, id := s.hub.position(room)
	o := *since.Offset
	switch {
	case o < -1 || *since.Partition < 0:
		return 0, "", fmt.Errorf("%w: since %d:%d is not a position", errInvalidFrame, *since.Partition, o)
	case since.TopicID != "" && since.TopicID != id:
		return 0, ReasonLogRecreated, nil
	case *since.Partition != p:
		return 0, ReasonWrongPartition, nil
	case next-1-o > s.cfg.RecoveryWindow:
		return 0, ReasonTooOld, nil
	case o >= next:
		// Ahead of this gateway's tail: valid only if the log has it.
		ctx, cancel := context.WithTimeout(context.Background(), s.cfg.RecoveryTimeout)
		defer cancel()
		ends, err := s.endOffsets(ctx)
		if err != nil {
			return 0, "", fmt.Errorf("%w: %w", errUnavailable, err)
		}
		if o >= ends[p] {
			return 0, ReasonBeyondEnd, nil
		}
	}
	return o, "", nil
}

func (s *Server) endOffsets(ctx context.Context) (map[int32]int64, error) {
	admin := s.admin.Load()
	if admin == nil { // only before Run started; joins wait for ready
		return nil, errors.New("the log tail is not running")
	}
	return kafka.EndOffsets(ctx, admin, s.cfg.Topic)
}

// recoverRoom replays room's records in (from, next) from the log itself to
// c, then delivers what fanout buffered meanwhile and switches the
// subscription to live: no gap, no duplicate.
func (s *Server) recoverRoom(c *conn, room string, p int32, from, next int64) (reason string, err error) {
	seen := map[string]struct{}{}
	if from+1 < next {
		reason, err = s.replay(c, room, p, from+1, next-1, seen)
		if err != nil || reason != "" {
			return reason, err
		}
	}
	if !s.hub.finishRecovery(c, room, next-1, seen) {
		return ReasonOverflow, nil
	}
	return "", nil
}

var errConnClosed = errors.New("connection closed")

// replay reads partition p from first to last (inclusive) and pushes the
// room's records to c; seen collects the message ids delivered. It reads on
// only as c's writer drains: at most RecoveryFetchBytes from the log and
// SendQueueBytes in c's queue at a time, however far back first is.
func (s *Server) replay(c *conn, room string, p int32, first, last int64, seen map[string]struct{}) (reason string, err error) {
	if err := s.acquireRecovery(); err != nil {
		return "", err
	}
	defer func() { <-s.recovery }()
	start := time.Now()
	fetch := int32(min(s.cfg.RecoveryFetchBytes, 1<<30))
	cl, err := kafka.NewClient(s.cfg.Kafka,
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{s.cfg.Topic: {p: kgo.NewOffset().At(first)}}),
		kgo.FetchMaxWait(50*time.Millisecond),
		kgo.FetchMaxBytes(fetch), kgo.FetchMaxPartitionBytes(fetch),
	)
	if err != nil {
		return "", err
	}
	defer cl.Close()
	pos := first - 1 // offset of the last record read
	defer func() { s.m.recoveryRecords.Add(float64(max(pos-first+1, 0))) }()
	for pos < last {
		fs, err := s.pollRecovery(cl, p, pos+1)
		if err != nil {
			return "", err
		}
		var stop error
		fs.EachRecord(func(r *kgo.Record) {
			if stop != nil || reason != "" || r.Offset > last || r.Offset <= pos {
				return
			}
			if pos == first-1 && r.Offset > first {
				reason = ReasonTooOld // the start is no longer in the log
				return
			}
			pos = r.Offset
			if frame := s.replayFrame(r, room, seen); frame != nil && !c.pushWait(frame) {
				stop = errConnClosed
			}
		})
		if stop != nil {
			return "", stop
		}
		if reason != "" {
			return reason, nil
		}
	}
	s.m.recoverySeconds.Observe(time.Since(start).Seconds())
	return "", nil
}

// acquireRecovery takes one of the MaxRecoveries slots, waiting at most
// RecoveryTimeout.
func (s *Server) acquireRecovery() error {
	t := time.NewTimer(s.cfg.RecoveryTimeout)
	defer t.Stop()
	select {
	case s.recovery <- struct{}{}:
		return nil
	case <-t.C:
		return fmt.Errorf("%w: too many recoveries at once", errUnavailable)
	}
}

// pollRecovery reads the next records of a recovery; a log that answers
// nothing within RecoveryTimeout fails it. Waiting for the client is not
// counted: that is bounded by SlowClientWait in pushWait.
func (s *Server) pollRecovery(cl *kgo.Client, p int32, at int64) (kgo.Fetches, error) {
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.RecoveryTimeout)
	defer cancel()
	fs := cl.PollRecords(ctx, 1024)
	if ctx.Err() != nil {
		return nil, fmt.Errorf("%w: recovery read of partition %d at %d: %w", errUnavailable, p, at, ctx.Err())
	}
	return fs, nil
}

// replayFrame returns the frame of r for a recovery of room, or nil when r
// is not the room's or its message was delivered already.
func (s *Server) replayFrame(r *kgo.Record, room string, seen map[string]struct{}) []byte {
	if !kafka.InRoom(r, room) {
		return nil
	}
	d := s.toDelivery(r)
	if d.frame == nil || d.room != room {
		return nil
	}
	if d.messageID != "" {
		if off, ok := s.hub.firstSeen(room, d.messageID); ok && off < d.offset {
			return nil
		}
		if _, ok := seen[d.messageID]; ok {
			return nil
		}
		seen[d.messageID] = struct{}{}
	}
	return d.frame
}
