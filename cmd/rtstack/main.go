// Command rtstack runs the parts of the rtstack chat platform: the embedded
// broker, the gateway, the projectors, the reactor and the workers, together
// (`rtstack dev`) or one per process; and the operator's tools (token, log,
// rebuild, digest, dlq, loadtest).
//
// This package is the composition root: it reads configuration once and
// wires components; it holds no logic of its own.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/peterbourgon/ff/v3"
	"github.com/peterbourgon/ff/v3/ffcli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(2)
		}
		fmt.Fprintln(os.Stderr, "rtstack:", err)
		os.Exit(1)
	}
}

// command builds a subcommand whose flags are the shared configuration plus
// extra, settable from the environment too.
func command(name, usage, help string, cfg *config, extra func(*flag.FlagSet), exec func(ctx context.Context, args []string) error) *ffcli.Command {
	fs := flag.NewFlagSet("rtstack "+name, flag.ContinueOnError)
	if cfg != nil {
		cfg.register(fs)
	}
	if extra != nil {
		extra(fs)
	}
	return &ffcli.Command{
		Name: name[strings.LastIndex(name, " ")+1:], // "log dump" is matched as "dump"

		ShortUsage: "rtstack " + usage,
		ShortHelp:  help,
		FlagSet:    fs,
		Options:    []ff.Option{ff.WithEnvVars()},
		Exec:       exec,
	}
}

func run(ctx context.Context, args []string) error {
	root := &ffcli.Command{
		ShortUsage: "rtstack <command> [flags]",
		LongHelp: "rtstack: an event-sourced real-time chat platform. Kafka is the source of truth;\n" +
			"every flag is also an environment variable (-kafka-brokers = KAFKA_BROKERS).",
		Subcommands: []*ffcli.Command{
			devCommand(),
			gatewayCommand(),
			projectCommand(),
			reactCommand(),
			workCommand(),
			brokerCommand(),
			tokenCommand(),
			rebuildCommand(),
			logCommand(),
			digestCommand(),
			dlqCommand(),
			loadtestCommand(),
		},
		Exec: func(context.Context, []string) error { return flag.ErrHelp },
	}
	return root.ParseAndRun(ctx, args)
}
