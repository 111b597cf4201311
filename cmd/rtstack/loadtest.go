package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/peterbourgon/ff/v3/ffcli"
	"golang.org/x/term"

	"github.com/rtstack/rtstack/gateway/auth"
	"github.com/rtstack/rtstack/gateway/loadgen"
)

func loadtestCommand() *ffcli.Command {
	var (
		cfg    config
		lg     loadgen.Config
		url    string
		asJSON bool
	)
	return command("loadtest",
		"loadtest [--url ws://…/ws] [--clients N --rooms M --senders S --rate R | --window W] [--duration D] [--json]",
		"drive a running gateway with WebSocket clients and report throughput and latency", &cfg,
		func(fs *flag.FlagSet) {
			fs.StringVar(&url, "url", "", "WebSocket endpoint (default ws://HTTP_ADDR/ws)")
			fs.IntVar(&lg.Clients, "clients", 100, "connections to open")
			fs.IntVar(&lg.Rooms, "rooms", 1, "rooms the clients are spread over, round robin")
			fs.IntVar(&lg.Senders, "senders", 10, "clients that send (0: hold idle connections)")
			fs.Float64Var(&lg.Rate, "rate", 0, "open loop: messages per second over all senders")
			fs.IntVar(&lg.Window, "window", 0, "closed loop: messages in flight per sender (default 16 without --rate)")
			fs.DurationVar(&lg.Duration, "duration", 10*time.Second, "how long to send")
			fs.DurationVar(&lg.Drain, "drain", 10*time.Second, "how long to wait for the last acks and deliveries")
			fs.IntVar(&lg.TextBytes, "text-bytes", 100, "length of each message's text")
			fs.BoolVar(&asJSON, "json", false, "print the report as JSON")
		},
		func(ctx context.Context, _ []string) error {
			// Tokens for a local gateway are signed like `rtstack token`'s.
			cfg.dev = true
			keys, err := auth.NewKeys(cfg.jwtSecret())
			if err != nil {
				return err
			}
			lg.URL = url
			if lg.URL == "" {
				lg.URL = "ws://" + cfg.HTTPAddr + "/ws"
			}
			if lg.Senders > 0 && lg.Rate == 0 && lg.Window == 0 {
				lg.Window = 16
			}
			lg.Token = func(user string) (string, error) { return keys.Sign(user, "", false, lg.Duration+time.Hour) }
			lg.Progress = os.Stderr
			lg.ProgressTTY = term.IsTerminal(int(os.Stderr.Fd()))
			rep, err := loadgen.Run(ctx, lg)
			if err != nil {
				return err
			}
			if asJSON {
				enc := json.NewEncoder(os.Stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(rep)
			}
			fmt.Print(rep)
			return nil
		})
}
