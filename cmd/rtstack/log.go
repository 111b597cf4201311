package main

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/peterbourgon/ff/v3/ffcli"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/rtstack/rtstack/events"
	"github.com/rtstack/rtstack/infra/kafka"
	"github.com/rtstack/rtstack/internal/keyring"
	"github.com/rtstack/rtstack/schemas"
)

func logCommand() *ffcli.Command {
	return &ffcli.Command{
		Name:       "log",
		ShortUsage: "rtstack log tail|dump|decode [flags]",
		ShortHelp:  "print decoded events as JSON lines",
		Subcommands: []*ffcli.Command{
			logReadCommand("tail", "follow the log: new events as they are appended", true),
			logReadCommand("dump", "print the log up to its current end, then exit", false),
			logDecodeCommand(),
		},
		Exec: func(context.Context, []string) error { return flag.ErrHelp },
	}
}

// logLine is one decoded event as log tail/dump/decode print it.
type logLine struct {
	Partition *int32       `json:"partition,omitempty"`
	Offset    *int64       `json:"offset,omitempty"`
	Type      events.Type  `json:"type,omitempty"`
	Event     events.Event `json:"event,omitempty"`
	Error     string       `json:"error,omitempty"`
}

func logReadCommand(name, help string, follow bool) *ffcli.Command {
	var (
		cfg           config
		fromBeginning bool
		room          string
	)
	return command("log "+name, "log "+name+" [--from-beginning] [--room R]", help, &cfg,
		func(fs *flag.FlagSet) {
			fs.BoolVar(&fromBeginning, "from-beginning", !follow, "start at offset zero (dump always does)")
			fs.StringVar(&room, "room", "", "only this room's events")
		},
		func(ctx context.Context, _ []string) error {
			if err := cfg.validate(false); err != nil {
				return err
			}
			codec, err := newCodec(ctx, &cfg)
			if err != nil {
				return err
			}
			start := kgo.NewOffset().AtEnd()
			if fromBeginning || !follow {
				start = kgo.NewOffset().AtStart()
			}
			// Without a consumer group, ConsumeTopics reads every partition
			// directly: nothing is committed, nothing is joined.
			cl, err := kafka.NewClient(kafka.ClientConfig{Brokers: cfg.brokers()},
				kgo.ConsumeTopics(cfg.Topic), kgo.ConsumeResetOffset(start))
			if err != nil {
				return err
			}
			defer cl.Close()
			if _, err := kafka.DescribeTopic(ctx, cl, cfg.Topic); err != nil {
				return fmt.Errorf("%w (is the broker at %s running? `rtstack dev` or `rtstack broker` starts one)", err, cfg.brokers()[0])
			}
			ends, err := kafka.EndOffsets(ctx, cl, cfg.Topic)
			if err != nil {
				return err
			}
			pending := map[int32]bool{} // dump: partitions not yet read to their end
			for p, end := range ends {
				if end > 0 {
					pending[p] = true
				}
			}
			out := bufio.NewWriter(os.Stdout)
			defer out.Flush()
			enc := json.NewEncoder(out)
			for follow || len(pending) > 0 {
				fs := cl.PollFetches(ctx)
				if ctx.Err() != nil {
					return nil
				}
				if err := fs.Err0(); err != nil && !errors.Is(err, context.Canceled) {
					return fmt.Errorf("read %s: %w", cfg.Topic, err)
				}
				var werr error
				fs.EachRecord(func(r *kgo.Record) {
					if !follow && r.Offset >= ends[r.Partition]-1 {
						delete(pending, r.Partition)
					}
					if !follow && r.Offset >= ends[r.Partition] {
						return
					}
					if room != "" && string(r.Key) != room {
						return
					}
					if err := enc.Encode(decodeLine(codec, r)); err != nil && werr == nil {
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
		})
}

func decodeLine(codec *schemas.Codec, r *kgo.Record) logLine {
	p, o := r.Partition, r.Offset
	line := logLine{Partition: &p, Offset: &o}
	rec, err := kafka.Decode(codec, r)
	if err != nil {
		line.Error = err.Error()
		return line
	}
	line.Type, line.Event = rec.Event.Type(), redacted(rec.Event)
	return line
}

// redacted hides a webhook secret that a registration from before sealing
// holds in the clear: the log keeps it, the CLI never prints it.
func redacted(ev events.Event) events.Event {
	if w, ok := ev.(*events.WebhookRegistered); ok && w.Secret != "" && !keyring.IsSealed(w.Secret) {
		c := *w
		c.Secret = "[redacted: stored in the clear before sealing; register the webhook again]"
		return &c
	}
	return ev
}

func logDecodeCommand() *ffcli.Command {
	var cfg config
	return command("log decode", "log decode < kcat-output",
		"decode kcat -f '%R%s' framing (4-byte big-endian length, then the value) from stdin", &cfg, nil,
		func(ctx context.Context, _ []string) error {
			codec, err := newCodec(ctx, &cfg)
			if err != nil {
				return err
			}
			return decodeFramed(os.Stdin, os.Stdout, codec)
		})
}

// decodeFramed reads length-prefixed values (kcat's %R%s) and writes one
// JSON line per value; a value that does not decode is printed with its
// error, and reading goes on.
func decodeFramed(r io.Reader, w io.Writer, codec *schemas.Codec) error {
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
		var line logLine
		if ev, err := codec.Decode(val); err != nil {
			line.Error = err.Error()
		} else {
			line.Type, line.Event = ev.Type(), redacted(ev)
		}
		if err := enc.Encode(line); err != nil {
			return err
		}
	}
}
