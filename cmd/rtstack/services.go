package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"time"
)

// service is an external dependency that must be reachable before start.
type service struct {
	name, rawURL, defaultPort string
	// debian says how to start it on Debian, listening on port (the one
	// configured, which the hint must name, not the default).
	debian func(port string) string
}

func services(cfg *config, need ...string) []service {
	all := map[string]service{
		"postgres": {"Postgres", cfg.PostgresURL, "5432", func(port string) string {
			if port == "5432" { // the cluster's own port: the command the README shows
				return "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start"
			}
			return fmt.Sprintf(`pg_ctlcluster --skip-systemctl-redirect -o "-p %s" $(ls /etc/postgresql) main start`, port)
		}},
		"redis": {"Redis", cfg.RedisURL, "6379", func(port string) string {
			return fmt.Sprintf(`redis-server --daemonize yes --bind 127.0.0.1 -::1 --port %s --save "" --appendonly no`, port)
		}},
		"rabbitmq": {"RabbitMQ", cfg.RabbitURL, "5672", func(port string) string {
			if port == "5672" {
				return "rabbitmq-server -detached"
			}
			return fmt.Sprintf("RABBITMQ_NODE_PORT=%s rabbitmq-server -detached", port)
		}},
	}
	var out []service
	for _, n := range need {
		out = append(out, all[n])
	}
	return out
}

// checkServices dials each service once and names every one that is down,
// with its address and how to start it.
func checkServices(ctx context.Context, svcs []service) error {
	var errs []error
	for _, s := range svcs {
		errs = append(errs, s.dial(ctx))
	}
	return errors.Join(errs...)
}

// dial connects to s once and says how to start it if it is down.
func (s service) dial(ctx context.Context) error {
	addr, err := hostPort(s.rawURL, s.defaultPort)
	if err != nil {
		return fmt.Errorf("%s: bad URL %q: %w", s.name, s.rawURL, err)
	}
	d := net.Dialer{Timeout: 2 * time.Second}
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		_, port, _ := net.SplitHostPort(addr)
		return fmt.Errorf("%s is not reachable at %s.\n  Start it with:  %s\n  or all services: docker compose -f infra/docker-compose.yml up -d", s.name, addr, s.debian(port))
	}
	return c.Close()
}

func hostPort(raw, defaultPort string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", err
	}
	host, port := u.Hostname(), u.Port()
	if host == "" {
		host = "127.0.0.1"
	}
	if port == "" {
		port = defaultPort
	}
	return net.JoinHostPort(host, port), nil
}
