package main

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/peterbourgon/ff/v3/ffcli"

	"github.com/rtstack/rtstack/projections"
)

func projectCommand() *ffcli.Command {
	var cfg config
	return command("project", "project [postgres|redis|all]", "run the projectors alone (default all)", &cfg, nil,
		func(ctx context.Context, args []string) error {
			targets, err := targetsOf(args, "all")
			if err != nil {
				return err
			}
			p, err := openParts(ctx, &cfg, false, targets...)
			if err != nil {
				return err
			}
			defer p.close()
			if _, err := ensureTopic(ctx, &cfg, p.log, cfg.brokers()); err != nil {
				return err
			}
			run, err := buildProjectors(ctx, p, targets, false)
			if err != nil {
				return err
			}
			if run, err = withOps(ctx, p, run, append(targets, "kafka")...); err != nil {
				return err
			}
			return runUntilDone(ctx, p, run)
		})
}

// withRepair adds to a projector's (or a rebuild's) error the command or
// setting that repairs it, when there is one.
func (p *parts) withRepair(err error, target string) error {
	switch {
	case errors.Is(err, projections.ErrOtherLog):
		return fmt.Errorf("%w\n%s is shared with another deployment (another DATA_DIR or Kafka cluster). "+
			"Give each deployment its own stores: its own database in POSTGRES_URL and its own REDIS_PREFIX (or REDIS_URL). "+
			"To replace this store's content with this log's deliberately: rtstack rebuild --adopt-log %s",
			err, p.storeName(target), target)
	case errors.Is(err, projections.ErrLogTruncated):
		return fmt.Errorf("%w\nrepair: rtstack rebuild %s (replays what the log still holds into a new version that replaces the active one; the records lost with the tail are gone from the projection too), then start the projector again", err, target)
	case errors.Is(err, projections.ErrLogChanged):
		return fmt.Errorf("%w\nrepair: rtstack rebuild %s, then start the projector again", err, target)
	}
	return err
}

// storeName says where the projection target is kept.
func (p *parts) storeName(target string) string {
	if target == "redis" {
		return fmt.Sprintf("the redis projection under prefix %q of %s", p.cfg.RedisPrefix, redactURL(p.cfg.RedisURL))
	}
	db := "?"
	if cc, err := pgconn.ParseConfig(p.cfg.PostgresURL); err == nil {
		db = cc.Database
	}
	return fmt.Sprintf("the postgres projection in database %q", db)
}

// targetsOf reads a postgres|redis|all argument.
func targetsOf(args []string, def string) ([]string, error) {
	t := def
	if len(args) > 0 {
		t = args[0]
	}
	if len(args) > 1 {
		return nil, fmt.Errorf("one target, not %v", args)
	}
	switch t {
	case "postgres", "redis":
		return []string{t}, nil
	case "all":
		return []string{"postgres", "redis"}, nil
	case "":
		return nil, fmt.Errorf("want postgres, redis or all")
	}
	return nil, fmt.Errorf("unknown target %q: want postgres, redis or all", t)
}

// buildProjectors returns the projectors of targets run together. With
// rebuildOnNewLog (rtstack dev), a projector that finds the log was
// recreated or lost its tail rebuilds its projection from the log and
// carries on; otherwise that is an error for the operator, naming the
// command that repairs it (rtstack rebuild).
func buildProjectors(ctx context.Context, p *parts, targets []string, rebuildOnNewLog bool) (func(context.Context) error, error) {
	var runs []func(context.Context) error
	for _, t := range targets {
		store, err := p.versioned(ctx, t)
		if err != nil {
			return nil, err
		}
		cfg := projections.Config{
			Kafka:      p.cfg.kafkaConfig(p.log),
			Topic:      p.cfg.Topic,
			Codec:      p.codec,
			Store:      store,
			Logger:     p.log.With("component", "projector"),
			Registerer: p.registerer("projector_" + t),
		}
		if _, err := projections.NewProjector(cfg); err != nil { // validate now, not at run time
			return nil, err
		}
		runs = append(runs, func(ctx context.Context) error {
			for {
				pr, err := projections.NewProjector(cfg)
				if err != nil {
					return err
				}
				err = pr.Run(ctx)
				switch {
				case !rebuildOnNewLog:
					return p.withRepair(err, t)
				case errors.Is(err, projections.ErrLogChanged):
					p.log.Warn("the log was recreated: rebuilding the projection from it", "projection", t)
				case errors.Is(err, projections.ErrLogTruncated):
					p.log.Error("the log lost its tail: rebuilding the projection from what it still holds", "projection", t, "err", err)
				default:
					// Another deployment's store above all is never
					// rebuilt here: each would wipe the other's in turn.
					return p.withRepair(err, t)
				}
				if err := rebuild(ctx, p, t, io.Discard, false, false); err != nil {
					return err
				}
			}
		})
	}
	return all(runs...), nil
}
