package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/peterbourgon/ff/v3/ffcli"

	"github.com/rtstack/rtstack/gateway/auth"
)

func tokenCommand() *ffcli.Command {
	var (
		cfg   config
		user  string
		name  string
		admin bool
		rooms string
		ttl   time.Duration
	)
	return command("token", "token --user NAME [--admin] [--rooms a,b.*] [--ttl 24h]", "print a signed JWT for local use", &cfg,
		func(fs *flag.FlagSet) {
			fs.StringVar(&user, "user", "", "user id (the token's sub)")
			fs.StringVar(&name, "name", "", "display name (optional)")
			fs.BoolVar(&admin, "admin", false, "grant admin (rebuild endpoints)")
			fs.StringVar(&rooms, "rooms", "", "comma-separated room patterns the token is limited to ('*' = any run of characters); empty: every room")
			fs.DurationVar(&ttl, "ttl", 24*time.Hour, "validity")
		},
		func(_ context.Context, _ []string) error {
			if user == "" {
				return errors.New("token: --user is required")
			}
			if ttl <= 0 { // a token that is born expired is refused at once: say so here
				return fmt.Errorf("token: --ttl must be positive, not %s", ttl)
			}
			claims := auth.Claims{Name: name, Admin: admin, RegisteredClaims: jwt.RegisteredClaims{Subject: user}}
			if rooms != "" {
				claims.Rooms = []string{}
				for _, p := range strings.Split(rooms, ",") {
					claims.Rooms = append(claims.Rooms, strings.TrimSpace(p))
				}
				if err := auth.ValidatePatterns(claims.Rooms); err != nil {
					return fmt.Errorf("token: --rooms: %w", err)
				}
			}
			// A local token is for the local dev secret unless one is set.
			cfg.dev = true
			keys, err := cfg.keys()
			if err != nil {
				return err
			}
			tok, err := keys.SignClaims(claims, ttl)
			if err != nil {
				return err
			}
			fmt.Println(tok)
			return nil
		})
}
