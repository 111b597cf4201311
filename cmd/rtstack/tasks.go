package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"os"

	"github.com/peterbourgon/ff/v3/ffcli"
	"github.com/redis/go-redis/v9"

	"github.com/rtstack/rtstack/gateway/presence"
	"github.com/rtstack/rtstack/tasks/rabbit"
	"github.com/rtstack/rtstack/tasks/reactor"
	"github.com/rtstack/rtstack/tasks/worker"
)

func reactCommand() *ffcli.Command {
	var cfg config
	var resume bool
	return command("react", "react", "run the reactor alone: log → side-effect tasks in RabbitMQ", &cfg,
		func(fs *flag.FlagSet) {
			fs.BoolVar(&resume, "resume-truncated", false, "if the log lost its tail under the reactor's committed offsets, resume at the log's end (old side effects do not fire again; the records appended next are emitted) instead of refusing to start")
		},
		func(ctx context.Context, _ []string) error {
			p, err := openParts(ctx, &cfg, false, "rabbitmq")
			if err != nil {
				return err
			}
			defer p.close()
			if _, err := ensureTopic(ctx, &cfg, p.log, cfg.brokers()); err != nil {
				return err
			}
			r, err := buildReactor(p, resume)
			if err != nil {
				return err
			}
			run, err := withOps(ctx, p, r.Run, "rabbitmq", "kafka")
			if err != nil {
				return err
			}
			return runUntilDone(ctx, p, run)
		})
}

// buildReactor builds the reactor; resumeTruncated is
// reactor.Config.ResumeTruncated (always under rtstack dev).
func buildReactor(p *parts, resumeTruncated bool) (*reactor.Reactor, error) {
	kr, err := p.keyring()
	if err != nil {
		return nil, err
	}
	rc := p.rabbitConfig()
	return reactor.New(reactor.Config{
		ResumeTruncated: resumeTruncated,
		Kafka:           p.cfg.kafkaConfig(p.log),
		Topic:           p.cfg.Topic,
		Codec:           p.codec,
		RabbitURL:       rc.URL,
		Prefix:          rc.Prefix,
		RetryDelays:     rc.RetryDelays,
		Logger:          p.log,
		Registerer:      p.registerer("reactor"),
		Keyring:         kr,
	})
}

var _ worker.Notifier = (*presence.Tracker)(nil)

func workCommand() *ffcli.Command {
	var cfg config
	return command("work", "work", "run the task workers alone (webhooks, notifications)", &cfg, nil,
		func(ctx context.Context, _ []string) error {
			p, err := openParts(ctx, &cfg, false, "rabbitmq", "postgres", "redis")
			if err != nil {
				return err
			}
			defer p.close()
			w, err := buildWorker(p, nil)
			if err != nil {
				return err
			}
			run, err := withOps(ctx, p, w.Run, "rabbitmq", "postgres", "redis")
			if err != nil {
				return err
			}
			return runUntilDone(ctx, p, run)
		})
}

// buildWorker returns a worker; notifier reaches online users (nil: a
// presence client of the shared Redis, without a gateway of its own).
func buildWorker(p *parts, notifier worker.Notifier) (*worker.Worker, error) {
	kr, err := p.keyring()
	if err != nil {
		return nil, err
	}
	if notifier == nil {
		rdb, err := p.redis()
		if err != nil {
			return nil, err
		}
		n, err := newNotifier(rdb, p.cfg.RedisPrefix, p.log)
		if err != nil {
			return nil, err
		}
		notifier = n
	}
	rc := p.rabbitConfig()
	return worker.New(worker.Config{
		RabbitURL:    rc.URL,
		Prefix:       rc.Prefix,
		RetryDelays:  rc.RetryDelays,
		AllowPrivate: p.cfg.allowPrivate(),
		NotifyURL:    p.cfg.NotifyURL,
		Notifier:     notifier,
		PostgresURL:  p.cfg.PostgresURL,
		Logger:       p.log,
		Registerer:   p.registerer("worker"),
		Keyring:      kr,
	})
}

func dlqCommand() *ffcli.Command {
	return &ffcli.Command{
		Name:       "dlq",
		ShortUsage: "rtstack dlq list|replay|purge",
		ShortHelp:  "the dead-letter queue of side-effect tasks",
		Subcommands: []*ffcli.Command{
			dlqSub("list", "show dead tasks with their error and attempts (JSON lines)", func(ctx context.Context, rc rabbit.Config) error {
				dead, err := rabbit.ListDLQ(ctx, rc, rabbit.DefaultListLimit)
				if err != nil {
					return err
				}
				enc := json.NewEncoder(os.Stdout)
				for _, d := range dead {
					if err := enc.Encode(d); err != nil {
						return err
					}
				}
				fmt.Fprintf(os.Stderr, "%d task(s) in the DLQ\n", len(dead))
				return nil
			}),
			dlqSub("replay", "put every dead task back on the main queue, attempts reset", func(ctx context.Context, rc rabbit.Config) error {
				n, err := rabbit.ReplayDLQ(ctx, rc)
				if err != nil {
					return err
				}
				fmt.Printf("replayed %d task(s)\n", n)
				return nil
			}),
			dlqSub("purge", "drop every dead task", func(ctx context.Context, rc rabbit.Config) error {
				n, err := rabbit.PurgeDLQ(ctx, rc)
				if err != nil {
					return err
				}
				fmt.Printf("purged %d task(s)\n", n)
				return nil
			}),
		},
	}
}

func dlqSub(name, help string, fn func(context.Context, rabbit.Config) error) *ffcli.Command {
	var cfg config
	return command("dlq "+name, "dlq "+name, help, &cfg, nil, func(ctx context.Context, _ []string) error {
		if err := cfg.validate(false); err != nil {
			return err
		}
		if err := checkServices(ctx, services(&cfg, "rabbitmq")); err != nil {
			return err
		}
		delays, _ := cfg.retryDelays()
		return fn(ctx, rabbit.Config{URL: cfg.RabbitURL, Prefix: cfg.RabbitPrefix, RetryDelays: delays})
	})
}

// newNotifier reaches online users through the shared presence in Redis,
// for a worker that runs without a gateway of its own.
func newNotifier(rdb *redis.Client, prefix string, log *slog.Logger) (*presence.Tracker, error) {
	host, _ := os.Hostname()
	return presence.New(presence.Config{Redis: rdb, Prefix: prefix + "live:", GatewayID: fmt.Sprintf("worker-%s-%d", host, os.Getpid()),
		Logger: log.With("component", "presence")})
}
