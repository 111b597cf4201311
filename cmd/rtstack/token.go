package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"time"

	"github.com/peterbourgon/ff/v3/ffcli"

	"github.com/rtstack/rtstack/gateway/auth"
)

func tokenCommand() *ffcli.Command {
	var (
		cfg   config
		user  string
		name  string
		admin bool
		ttl   time.Duration
	)
	return command("token", "token --user NAME [--admin]", "print a signed JWT for local use", &cfg,
		func(fs *flag.FlagSet) {
			fs.StringVar(&user, "user", "", "user id (the token's sub)")
			fs.StringVar(&name, "name", "", "display name (optional)")
			fs.BoolVar(&admin, "admin", false, "grant admin (rebuild endpoints)")
			fs.DurationVar(&ttl, "ttl", 24*time.Hour, "validity")
		},
		func(_ context.Context, _ []string) error {
			if user == "" {
				return errors.New("token: --user is required")
			}
			if ttl <= 0 { // a token that is born expired is refused at once: say so here
				return fmt.Errorf("token: --ttl must be positive, not %s", ttl)
			}
			// A local token is for the local dev secret unless one is set.
			cfg.dev = true
			keys, err := auth.NewKeys(cfg.jwtSecret())
			if err != nil {
				return err
			}
			tok, err := keys.Sign(user, name, admin, ttl)
			if err != nil {
				return err
			}
			fmt.Println(tok)
			return nil
		})
}
