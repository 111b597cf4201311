package main

import (
	"context"
	"flag"
	"fmt"
	"os"

	"github.com/peterbourgon/ff/v3/ffcli"

	"github.com/rtstack/rtstack/infra/kafka"
)

func logCommand() *ffcli.Command {
	return &ffcli.Command{
		Name:       "log",
		ShortUsage: "rtstack log tail|dump|decode [flags]",
		ShortHelp:  "print decoded events as JSON lines",
		Subcommands: []*ffcli.Command{
			logReadCommand("tail", "follow the log: new events as they are appended (--from-beginning: the whole log first)", true),
			logReadCommand("dump", "print the whole log, from offset zero to its current end, then exit", false),
			logDecodeCommand(),
		},
		Exec: func(context.Context, []string) error { return flag.ErrHelp },
	}
}

func logReadCommand(name, help string, follow bool) *ffcli.Command {
	var (
		cfg           config
		fromBeginning bool
		room          string
	)
	fromHelp := "start at offset zero, then follow"
	if !follow {
		fromHelp = "accepted for symmetry with tail: dump always starts at offset zero"
	}
	return command("log "+name, "log "+name+" [--from-beginning] [--room R]", help, &cfg,
		func(fs *flag.FlagSet) {
			fs.BoolVar(&fromBeginning, "from-beginning", !follow, fromHelp)
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
			lr, err := kafka.OpenLogReader(ctx, kafka.ReaderConfig{
				Kafka: cfg.kafkaConfig(nil), Topic: cfg.Topic, Codec: codec,
				Room: room, Follow: follow, FromBeginning: fromBeginning,
			})
			if err != nil {
				return fmt.Errorf("%w (is the broker at %s running? `rtstack dev` or `rtstack broker` starts one)", err, cfg.brokers()[0])
			}
			defer lr.Close()
			return lr.WriteJSON(ctx, os.Stdout)
		})
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
			return kafka.DecodeFramed(os.Stdin, os.Stdout, codec)
		})
}
