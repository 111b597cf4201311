package main

import (
	"context"
	"fmt"

	"github.com/peterbourgon/ff/v3/ffcli"
)

func devCommand() *ffcli.Command {
	var cfg config
	return command("dev", "dev", "everything in one process: embedded broker, gateway, projectors, reactor, workers", &cfg, nil,
		func(ctx context.Context, _ []string) error {
			cfg.dev = true
			if cfg.embedded() {
				if err := cfg.validateBroker(); err != nil {
					return err
				}
			}
			p, err := openParts(ctx, &cfg, true, "postgres", "redis", "rabbitmq")
			if err != nil {
				return err
			}
			defer p.close()
			if cfg.embedded() {
				b, err := startBroker(ctx, &cfg, p.log)
				if err != nil {
					return err
				}
				// Registered first, so it closes last: after every client.
				p.closers = append([]func(){b.Close}, p.closers...)
			} else if _, err := ensureTopic(ctx, &cfg, p.log, cfg.brokers()); err != nil {
				return err
			}

			gw, err := buildGateway(ctx, p)
			if err != nil {
				return err
			}
			projectors, err := buildProjectors(ctx, p, []string{"postgres", "redis"}, true)
			if err != nil {
				return err
			}
			react, err := buildReactor(p, true)
			if err != nil {
				return err
			}
			work, err := buildWorker(p, gw.presence)
			if err != nil {
				return err
			}
			// Before the gateway serves: a message appended to a log that
			// lost its tail before this check would be taken for a lost one.
			if err := react.CheckTruncated(ctx); err != nil {
				return err
			}
			fmt.Printf(`rtstack dev is up
  web UI      %[1]s/
  WebSocket   ws://%[2]s/ws?token=TOKEN
  HTTP API    %[1]s/api/…   metrics %[1]s/metrics
  token       bin/rtstack token --user alice
  the log     kcat -b %[3]s%[5]s -C -t %[4]s -J -e
`, gw.url(), gw.ln.Addr(), cfg.brokers()[0], cfg.Topic, cfg.kcatAuth())
			return runUntilDone(ctx, p, all(gw.run, projectors, react.Run, work.Run), gw.shutdown)
		})
}
