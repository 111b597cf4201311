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
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/peterbourgon/ff/v3"
	"github.com/peterbourgon/ff/v3/ffcli"
)

// Exit codes, documented in the README; scripts and the end-to-end tests rely on them.
const (
	exitOK    = 0 // success, or help that was asked for
	exitError = 1 // a failure, with its message on stderr
	exitUsage = 2 // no command or an unknown one: the usage on stderr
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
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

func rootCommand() *ffcli.Command {
	return &ffcli.Command{
		Name:       "rtstack",
		ShortUsage: "rtstack <command> [flags]",
		LongHelp: "rtstack: an event-sourced real-time chat platform. Kafka is the source of truth;\n" +
			"every flag is also an environment variable (-kafka-brokers = KAFKA_BROKERS).\n" +
			"`rtstack help COMMAND` or `rtstack COMMAND -h` shows a command's flags.",
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
			versionsCommand(),
			dlqCommand(),
			loadtestCommand(),
		},
	}
}

// run parses args, runs the command they name and returns the exit code.
// ffcli's own printing is silenced (every flag set writes to io.Discard) so
// that help goes to stdout and errors come first, each once, from here.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	root := rootCommand()
	quiet(root, "rtstack")
	if len(args) > 0 && args[0] == "help" {
		// `rtstack help log dump` is `rtstack log dump -h`.
		args = append(append([]string(nil), args[1:]...), "-h")
	}
	cmd, path := resolve(root, args)
	var noExec ffcli.NoExecError
	switch err := root.Parse(args); {
	case errors.Is(err, flag.ErrHelp):
		fmt.Fprintln(stdout, ffcli.DefaultUsageFunc(cmd))
		return exitOK
	case err != nil && !errors.As(err, &noExec):
		fmt.Fprintf(stderr, "%s: %v\nrun '%s -h' for usage\n", path, err, path)
		return exitError
	}
	if len(cmd.Subcommands) > 0 { // a group runs nothing itself
		if rest := cmd.FlagSet.Args(); len(rest) > 0 {
			fmt.Fprintf(stderr, "%s: unknown command %q\n\n", path, rest[0])
		}
		fmt.Fprintln(stderr, ffcli.DefaultUsageFunc(cmd))
		return exitUsage
	}
	if err := root.Run(ctx); err != nil {
		if errors.Is(err, flag.ErrHelp) { // the command's arguments name nothing it knows
			fmt.Fprintln(stderr, ffcli.DefaultUsageFunc(cmd))
			return exitUsage
		}
		fmt.Fprintln(stderr, "rtstack:", err)
		return exitError
	}
	return exitOK
}

// quiet gives every command in the tree a flag set that returns errors
// instead of exiting and prints nothing.
func quiet(c *ffcli.Command, path string) {
	if c.FlagSet == nil {
		c.FlagSet = flag.NewFlagSet(path, flag.ContinueOnError)
	}
	c.FlagSet.SetOutput(io.Discard)
	for _, sub := range c.Subcommands {
		quiet(sub, path+" "+sub.Name)
	}
}

// resolve follows the leading command names in args down the tree, as
// ffcli's Parse does, and returns the command they name and its path.
func resolve(root *ffcli.Command, args []string) (*ffcli.Command, string) {
	cmd, path := root, "rtstack"
next:
	for _, a := range args {
		for _, sub := range cmd.Subcommands {
			if strings.EqualFold(a, sub.Name) {
				cmd, path = sub, path+" "+sub.Name
				continue next
			}
		}
		break
	}
	return cmd, path
}
