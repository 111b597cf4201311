package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/peterbourgon/ff/v3/ffcli"

	"github.com/rtstack/rtstack/gateway/api"
	"github.com/rtstack/rtstack/projections"
)

func rebuildCommand() *ffcli.Command {
	var cfg config
	var asOf string
	var adopt bool
	var flags *flag.FlagSet
	return command("rebuild", "rebuild postgres|redis|all [--as-of TIME|P:O,…] [--adopt-log]",
		"blue/green rebuild from offset zero while the system runs; exits 0 when the new version is active. "+
			"With --as-of, builds a read-only version up to that point beside the active one and prints its name", &cfg,
		func(fs *flag.FlagSet) {
			flags = fs
			fs.StringVar(&asOf, "as-of", "", "build a read-only version as of an event time (RFC 3339) or log positions P:O,… (O: the last offset included)")
			fs.BoolVar(&adopt, "adopt-log", false, "replace a projection bound to another deployment's log (another DATA_DIR or Kafka cluster) with this log's; that deployment's projectors stop")
		},
		func(ctx context.Context, args []string) error {
			args, err := flagsAfter(flags, args)
			if err != nil {
				return fmt.Errorf("rebuild: %w", err)
			}
			targets, err := targetsOf(args, "")
			if err != nil {
				return fmt.Errorf("rebuild: %w", err)
			}
			var cut projections.Cut
			if asOf != "" {
				if cut, err = projections.ParseCut(asOf); err != nil {
					return fmt.Errorf("rebuild: %w", err)
				}
			}
			p, err := openParts(ctx, &cfg, false, targets...)
			if err != nil {
				return err
			}
			defer p.close()
			for _, t := range targets {
				if cut.IsZero() {
					err = rebuild(ctx, p, t, os.Stderr, isTerminal(os.Stderr), adopt)
				} else {
					err = rebuildAsOf(ctx, p, t, cut, os.Stdout, os.Stderr)
				}
				if err != nil {
					return p.withRepair(err, t)
				}
			}
			return nil
		})
}

// rebuildAsOf builds an as-of version of target, reporting progress to
// w and printing the version's name to out.
func rebuildAsOf(ctx context.Context, p *parts, target string, cut projections.Cut, out, w io.Writer) error {
	v, err := p.versioned(ctx, target)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "building %s as of %s\n", target, cut)
	progress := projections.NewProgress(w, isTerminal(os.Stderr))
	start := time.Now()
	version, err := projections.RebuildAsOf(ctx, rebuildConfig(p, target, v, progress), cut)
	progress.Finish()
	if err != nil {
		return fmt.Errorf("rebuild %s as of %s: %w", target, cut, err)
	}
	fmt.Fprintf(w, "%s as of %s built in %s: version %s (read it with ?version=%s; drop it with rtstack versions drop %s)\n",
		target, cut, time.Since(start).Round(time.Millisecond), version, version, version)
	fmt.Fprintln(out, version)
	return nil
}

// rebuildConfig is the configuration of a rebuild of target.
func rebuildConfig(p *parts, target string, v projections.Versioned, progress *projections.Progress) projections.RebuildConfig {
	return projections.RebuildConfig{
		Kafka:      p.cfg.kafkaConfig(p.log),
		Topic:      p.cfg.Topic,
		Codec:      p.codec,
		Target:     v,
		Progress:   progress.Update,
		Logger:     p.log.With("component", "rebuild", "projection", target),
		Registerer: p.registerer("rebuild"),
	}
}

// rebuild rebuilds one projection, reporting progress to w; adopt is
// RebuildConfig.AdoptLog.
func rebuild(ctx context.Context, p *parts, target string, w io.Writer, tty, adopt bool) error {
	v, err := p.versioned(ctx, target)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "rebuilding %s from offset zero\n", target)
	progress := projections.NewProgress(w, tty)
	start := time.Now()
	cfg := rebuildConfig(p, target, v, progress)
	cfg.AdoptLog = adopt
	err = projections.Rebuild(ctx, cfg)
	progress.Finish()
	if err != nil {
		return fmt.Errorf("rebuild %s: %w", target, err)
	}
	fmt.Fprintf(w, "%s rebuilt in %s; the new version is active\n", target, time.Since(start).Round(time.Millisecond))
	return nil
}

// rebuilder runs rebuilds started over the HTTP API, one at a time, in the
// background of the gateway process.
type rebuilder struct {
	p *parts
	// ctx bounds the background rebuilds: they outlive the request that
	// started them and end with the process (stop).
	ctx  context.Context
	stop context.CancelFunc

	mu      sync.Mutex // guards running
	running bool
}

func newRebuilder(p *parts) *rebuilder {
	ctx, stop := context.WithCancel(context.Background())
	r := &rebuilder{p: p, ctx: ctx, stop: stop}
	p.closers = append(p.closers, stop)
	return r
}

var _ api.Rebuilder = (*rebuilder)(nil)

func (r *rebuilder) Start(_ context.Context, target string) (string, error) {
	targets, err := targetsOf([]string{target}, "")
	if err != nil {
		return "", err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.running {
		return "", api.ErrRebuildRunning
	}
	r.running = true
	id := fmt.Sprintf("rebuild-%s-%d", target, time.Now().UnixMilli())
	go func() {
		defer func() { r.mu.Lock(); r.running = false; r.mu.Unlock() }()
		ctx := r.ctx
		for _, t := range targets {
			if err := rebuild(ctx, r.p, t, io.Discard, false, false); err != nil {
				r.p.log.Error("rebuild failed", "id", id, "err", err)
				return
			}
		}
		r.p.log.Info("rebuild done", "id", id)
	}()
	return id, nil
}

func digestCommand() *ffcli.Command {
	var cfg config
	return command("digest", "digest postgres|redis",
		"print a stable hash of the active projection's content: equal digests mean equal state", &cfg, nil,
		func(ctx context.Context, args []string) error {
			if len(args) != 1 || args[0] == "all" {
				return errors.New("digest: want postgres or redis")
			}
			p, err := openParts(ctx, &cfg, false, args[0])
			if err != nil {
				return err
			}
			defer p.close()
			v, err := p.versioned(ctx, args[0])
			if err != nil {
				return err
			}
			d, err := v.Digest(ctx)
			if err != nil {
				return fmt.Errorf("digest %s: %w", args[0], err)
			}
			fmt.Println(d)
			return nil
		})
}

// flagsAfter parses the flags that follow the first argument ("rebuild
// redis --as-of T": the flag package stops at "redis") and returns the
// arguments left.
func flagsAfter(fs *flag.FlagSet, args []string) ([]string, error) {
	if len(args) < 2 {
		return args, nil
	}
	if err := fs.Parse(args[1:]); err != nil {
		return nil, err
	}
	return append([]string{args[0]}, fs.Args()...), nil
}
