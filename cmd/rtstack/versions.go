package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/peterbourgon/ff/v3/ffcli"

	"github.com/rtstack/rtstack/gateway/api"
	"github.com/rtstack/rtstack/projections"
	"github.com/rtstack/rtstack/projections/postgres"
	redisproj "github.com/rtstack/rtstack/projections/redis"
)

// The projections answer ?version= reads of the API.
var (
	_ api.HistoryAt     = (*postgres.Projection)(nil)
	_ api.CountersAt    = (*redisproj.Projection)(nil)
	_ api.LeaderboardAt = (*redisproj.Projection)(nil)
)

func versionsCommand() *ffcli.Command {
	var listCfg, dropCfg config
	return &ffcli.Command{
		Name:       "versions",
		ShortUsage: "rtstack versions list [postgres|redis|all] | drop VERSION",
		ShortHelp:  "the versions of the projections: active, being built, as-of (read-only, see rebuild --as-of)",
		Subcommands: []*ffcli.Command{
			command("versions list", "versions list [postgres|redis|all]",
				"list every version: projection, name, state, as-of point, created", &listCfg, nil,
				func(ctx context.Context, args []string) error {
					targets, err := targetsOf(args, "all")
					if err != nil {
						return fmt.Errorf("versions list: %w", err)
					}
					p, err := openParts(ctx, &listCfg, false, targets...)
					if err != nil {
						return err
					}
					defer p.close()
					return listVersions(ctx, p, targets, os.Stdout)
				}),
			command("versions drop", "versions drop VERSION",
				"drop a version that is not active (rtstack_v<N>: Postgres, v<N>: Redis)", &dropCfg, nil,
				func(ctx context.Context, args []string) error {
					if len(args) != 1 {
						return errors.New("versions drop: want one version name (see rtstack versions list)")
					}
					target := versionTarget(args[0])
					p, err := openParts(ctx, &dropCfg, false, target)
					if err != nil {
						return err
					}
					defer p.close()
					s, err := snapshots(ctx, p, target)
					if err != nil {
						return err
					}
					if err := s.Drop(ctx, args[0]); err != nil {
						return fmt.Errorf("versions drop %s: %w", args[0], err)
					}
					fmt.Printf("dropped %s version %s\n", target, args[0])
					return nil
				}),
		},
		Exec: func(context.Context, []string) error { return flag.ErrHelp },
	}
}

// versionTarget names the projection a version belongs to by its form.
func versionTarget(v string) string {
	if strings.HasPrefix(v, "rtstack_v") {
		return "postgres"
	}
	return "redis"
}

func snapshots(ctx context.Context, p *parts, target string) (projections.Snapshots, error) {
	v, err := p.versioned(ctx, target)
	if err != nil {
		return nil, err
	}
	s, ok := v.(projections.Snapshots)
	if !ok {
		return nil, fmt.Errorf("the %s projection keeps no versions", target)
	}
	return s, nil
}

// listVersions prints the versions of targets as an aligned table.
func listVersions(ctx context.Context, p *parts, targets []string, out io.Writer) error {
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PROJECTION\tVERSION\tSTATE\tAS OF\tCREATED")
	for _, t := range targets {
		s, err := snapshots(ctx, p, t)
		if err != nil {
			return err
		}
		vs, err := s.Versions(ctx)
		if err != nil {
			return err
		}
		for _, v := range vs {
			created := "-"
			if !v.Created.IsZero() {
				created = v.Created.UTC().Format(time.RFC3339)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", t, v.Name, v.State, orDash(v.AsOf), created)
		}
	}
	return tw.Flush()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
