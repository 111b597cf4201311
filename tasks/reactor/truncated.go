package reactor

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/rtstack/rtstack/infra/kafka"
)

// ErrLogTruncated: the log lost its tail under the reactor's committed
// offsets (a committed offset beyond a partition's end): the records
// appended next get offsets the reactor believes it emitted already, and
// their tasks would never be published. The reactor stops rather than
// skip them, unless Config.ResumeTruncated says to resume at the log's
// end.
var ErrLogTruncated = errors.New("the log lost its tail: the reactor's committed offsets are beyond its end")

// truncatedErr is the error of a truncation the reactor will not resume
// from, with what the operator does about it.
func truncatedErr(ts []kafka.Truncation) error {
	return fmt.Errorf("reactor: %w (%s); the lost records' tasks were published already, the records appended next reuse their offsets. "+
		"Resume at the log's end without re-firing old side effects: rtstack react --resume-truncated (once; rtstack dev does it by itself)",
		ErrLogTruncated, kafka.FormatTruncations(ts))
}

// checkTruncated is CheckTruncated with cl: it compares the
// group's committed offsets with the log's end. A truncation is counted
// and logged; with ResumeTruncated the commits are moved back to the log's
// end (the group has no member yet, so an admin commit is accepted),
// otherwise it returns the error. Offsets that cannot be read are not
// judged: the assignment checks again.
func (r *Reactor) checkTruncated(ctx context.Context, cl *kgo.Client) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	adm := kadm.NewClient(cl)
	committed, err := adm.FetchOffsets(ctx, r.cfg.Group)
	if err == nil {
		err = committed.Error()
	}
	if errors.Is(err, kerr.GroupIDNotFound) {
		return nil // a group that never committed: nothing to be beyond the end
	}
	if err != nil {
		r.log.Warn("committed offsets not read; truncation not checked", "err", err)
		return nil
	}
	positions := map[int32]int64{}
	committed.Each(func(o kadm.OffsetResponse) {
		if o.Topic == r.cfg.Topic {
			positions[o.Partition] = o.At
		}
	})
	ends, err := kafka.EndOffsets(ctx, cl, r.cfg.Topic)
	if err != nil {
		r.log.Warn("end offsets not read; truncation not checked", "err", err)
		return nil
	}
	ts := r.truncations(positions, ends)
	if len(ts) == 0 || !r.cfg.ResumeTruncated {
		if len(ts) > 0 {
			return truncatedErr(ts)
		}
		return nil
	}
	resume := kadm.Offsets{}
	for _, t := range ts {
		resume.Add(kadm.Offset{Topic: r.cfg.Topic, Partition: t.Partition, At: t.End, LeaderEpoch: -1})
	}
	resp, err := adm.CommitOffsets(ctx, r.cfg.Group, resume)
	if err == nil {
		err = resp.Error()
	}
	if err != nil {
		return fmt.Errorf("reactor: resume at the log's end: %w", err)
	}
	return nil
}

// truncations returns where positions are beyond ends, after counting and
// logging it.
func (r *Reactor) truncations(positions, ends map[int32]int64) []kafka.Truncation {
	ts := kafka.Truncations(positions, ends)
	if len(ts) == 0 {
		return nil
	}
	r.m.truncated.Inc()
	action := "the reactor stops"
	if r.cfg.ResumeTruncated {
		action = "the reactor resumes at the log's end: old side effects do not fire again, the records appended next are emitted"
	}
	r.log.Error("the log lost its tail under the reactor's committed offsets; "+action,
		"truncated", kafka.FormatTruncations(ts))
	return ts
}

// fetchedPastEnd reports a truncation seen while running: a fetch whose
// high watermark is below a partition's committed offset (the client reset
// an out-of-range position). The reactor stops either way: records
// appended since the truncation cannot be told from the lost ones.
func (r *Reactor) fetchedPastEnd(fs kgo.Fetches) error {
	positions, ends := map[int32]int64{}, map[int32]int64{}
	fs.EachPartition(func(p kgo.FetchTopicPartition) {
		if p.Err == nil && len(p.Records) > 0 && p.Topic == r.cfg.Topic {
			positions[p.Partition] = r.partition(p.Partition).committed
			ends[p.Partition] = p.HighWatermark
		}
	})
	if ts := kafka.Truncations(positions, ends); len(ts) > 0 {
		r.m.truncated.Inc()
		r.log.Error("the log lost its tail under the running reactor; it stops", "truncated", kafka.FormatTruncations(ts))
		return fmt.Errorf("reactor: %w (%s) while running; start it again to check the log's end", ErrLogTruncated, kafka.FormatTruncations(ts))
	}
	return nil
}
