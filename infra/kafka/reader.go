package kafka

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/rtstack/rtstack/events"
	"github.com/rtstack/rtstack/schemas"
)

// ReaderConfig says what a LogReader reads.
type ReaderConfig struct {
	// Kafka reaches the cluster: seed brokers, TLS, SASL.
	Kafka ClientConfig
	Topic string
	Codec *schemas.Codec
	// Room keeps only that room's records; empty keeps every room.
	Room string
	// Follow keeps reading records as they are appended until the context
	// ends. Without it the reader starts at offset zero and stops at the end
	// the log had when it was opened.
	Follow bool
	// FromBeginning makes a follow start at offset zero instead of the end:
	// the whole log, then what is appended. A read without Follow always
	// starts at offset zero.
	FromBeginning bool
}

// Line is one record as a LogReader and DecodeFramed print it: the decoded
// event, or the error that kept it from decoding.
type Line struct {
	Partition *int32       `json:"partition,omitempty"`
	Offset    *int64       `json:"offset,omitempty"`
	Type      events.Type  `json:"type,omitempty"`
	Event     events.Event `json:"event,omitempty"`
	Error     string       `json:"error,omitempty"`
}

// LogReader prints the chat log as JSON lines, for a person or a script. It
// reads every partition directly, without a consumer group: nothing is
// committed, nothing is joined. Close it when done.
type LogReader struct {
	cfg   ReaderConfig
	cl    *kgo.Client
	place *Placement      // a misplaced record is printed with its error, as consumers refuse it
	ends  map[int32]int64 // the log's end per partition when opened
}

// OpenLogReader connects and checks that the topic exists. An error means
// the broker or the topic is not there.
func OpenLogReader(ctx context.Context, cfg ReaderConfig) (*LogReader, error) {
	start := kgo.NewOffset().AtEnd()
	if cfg.FromBeginning || !cfg.Follow {
		start = kgo.NewOffset().AtStart()
	}
	cl, err := NewClient(cfg.Kafka,
		kgo.ConsumeTopics(cfg.Topic), kgo.ConsumeResetOffset(start))
	if err != nil {
		return nil, err
	}
	info, err := DescribeTopic(ctx, cl, cfg.Topic)
	if err != nil {
		cl.Close()
		return nil, err
	}
	ends, err := EndOffsets(ctx, cl, cfg.Topic)
	if err != nil {
		cl.Close()
		return nil, err
	}
	return &LogReader{cfg: cfg, cl: cl, place: NewPlacement(cfg.Codec, info), ends: ends}, nil
}

// Close closes the reader's client.
func (lr *LogReader) Close() { lr.cl.Close() }

// WriteJSON writes one Line per record of the configured room to w, in
// partition order (partitions interleave). Without Follow it returns once
// every partition is read to the end seen at open; with Follow it returns
// nil when ctx ends, flushing w after each fetch.
func (lr *LogReader) WriteJSON(ctx context.Context, w io.Writer) error {
	follow := lr.cfg.Follow
	pending := map[int32]bool{} // without Follow: partitions not yet read to their end
	for p, end := range lr.ends {
		if end > 0 {
			pending[p] = true
		}
	}
	out := bufio.NewWriter(w)
	defer out.Flush()
	enc := json.NewEncoder(out)
	for follow || len(pending) > 0 {
		fs := lr.cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if err := fs.Err0(); err != nil && !errors.Is(err, context.Canceled) {
			return fmt.Errorf("read %s: %w", lr.cfg.Topic, err)
		}
		var werr error
		fs.EachRecord(func(r *kgo.Record) {
			if !follow && r.Offset >= lr.ends[r.Partition]-1 {
				delete(pending, r.Partition)
			}
			if !follow && r.Offset >= lr.ends[r.Partition] {
				return
			}
			if lr.cfg.Room != "" && !InRoom(r, lr.cfg.Room) {
				return
			}
			if err := enc.Encode(decodeLine(lr.place, r)); err != nil && werr == nil {
				werr = err
			}
		})
		if werr != nil {
			return werr
		}
		if follow {
			if err := out.Flush(); err != nil {
				return err
			}
		}
	}
	return nil
}

func decodeLine(place *Placement, r *kgo.Record) Line {
	p, o := r.Partition, r.Offset
	line := Line{Partition: &p, Offset: &o}
	rec, err := place.Decode(r)
	if err != nil {
		line.Error = err.Error()
		return line
	}
	line.Type, line.Event = rec.Event.Type(), rec.Event
	return line
}

// DecodeFramed reads length-prefixed values (kcat -f '%R%s': a 4-byte
// big-endian length, then the value) from r and writes one Line per value
// to w; a value that does not decode is printed with its error, and reading
// goes on.
func DecodeFramed(r io.Reader, w io.Writer, codec *schemas.Codec) error {
	in := bufio.NewReaderSize(r, 1<<16)
	out := bufio.NewWriter(w)
	defer out.Flush()
	enc := json.NewEncoder(out)
	var hdr [4]byte
	for {
		if _, err := io.ReadFull(in, hdr[:]); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return fmt.Errorf("read frame length: %w", err)
		}
		n := binary.BigEndian.Uint32(hdr[:])
		if n > 16<<20 {
			return fmt.Errorf("frame of %d bytes: not kcat -f '%%R%%s' output?", n)
		}
		val := make([]byte, n)
		if _, err := io.ReadFull(in, val); err != nil {
			return fmt.Errorf("read frame of %d bytes: %w", n, err)
		}
		var line Line
		if ev, err := codec.Decode(val, ""); err != nil { // kcat's %R%s framing carries no headers
			line.Error = err.Error()
		} else {
			line.Type, line.Event = ev.Type(), ev
		}
		if err := enc.Encode(line); err != nil {
			return err
		}
	}
}
