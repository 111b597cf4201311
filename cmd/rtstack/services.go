package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/redis/go-redis/v9"
)

// service is an external dependency that must be reachable, and accept
// the configured credentials, before start.
type service struct {
	name, rawURL, defaultPort string
	// debian says how to start it on Debian, listening on port (the one
	// configured, which the hint must name, not the default).
	debian func(port string) string
	// setting names the URL setting, for the hint when login fails.
	setting string
	// login opens one real session with the URL's credentials and closes
	// it: a port that answers is not yet a service that lets us in.
	login func(ctx context.Context, rawURL string) error
}

func services(cfg *config, need ...string) []service {
	all := map[string]service{
		"postgres": {"Postgres", cfg.PostgresURL, "5432", func(port string) string {
			if port == "5432" { // the cluster's own port: the command the README shows
				return "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start"
			}
			return fmt.Sprintf(`pg_ctlcluster --skip-systemctl-redirect -o "-p %s" $(ls /etc/postgresql) main start`, port)
		}, "POSTGRES_URL", loginPostgres},
		"redis": {"Redis", cfg.RedisURL, "6379", func(port string) string {
			return fmt.Sprintf(`redis-server --daemonize yes --bind 127.0.0.1 -::1 --port %s --save "" --appendonly no`, port)
		}, "REDIS_URL", loginRedis},
		"rabbitmq": {"RabbitMQ", cfg.RabbitURL, "5672", func(port string) string {
			if port == "5672" {
				return "rabbitmq-server -detached"
			}
			return fmt.Sprintf("RABBITMQ_NODE_PORT=%s rabbitmq-server -detached", port)
		}, "RABBIT_URL", loginRabbit},
	}
	var out []service
	for _, n := range need {
		out = append(out, all[n])
	}
	return out
}

// checkServices checks each service once and names every one that is down
// or refuses us, with its address and what to do.
func checkServices(ctx context.Context, svcs []service) error {
	var errs []error
	for _, s := range svcs {
		errs = append(errs, s.check(ctx))
	}
	return errors.Join(errs...)
}

// check dials s and logs in with the configured credentials. Its error
// names the service and address and never carries the password.
func (s service) check(ctx context.Context) error {
	if err := s.dial(ctx); err != nil {
		return err
	}
	addr, _ := hostPort(s.rawURL, s.defaultPort) // dial parsed it
	ctx, cancel := context.WithTimeout(ctx, loginTimeout)
	defer cancel()
	if err := s.login(ctx, s.rawURL); err != nil {
		return fmt.Errorf("%s at %s answers but rtstack cannot log in%s: %s\n  Check the credentials in %s", s.name, addr, asUser(s.rawURL), withoutPassword(err.Error(), s.rawURL), s.setting)
	}
	return nil
}

// asUser is " as NAME" for the user of rawURL, or "".
func asUser(rawURL string) string {
	if u, err := url.Parse(rawURL); err == nil && u.User != nil && u.User.Username() != "" {
		return " as " + u.User.Username()
	}
	return ""
}

// withoutPassword masks rawURL's password in text, should a driver ever
// quote it back.
func withoutPassword(text, rawURL string) string {
	if u, err := url.Parse(rawURL); err == nil && u.User != nil {
		if pw, ok := u.User.Password(); ok && pw != "" {
			return strings.ReplaceAll(text, pw, "xxxxx")
		}
	}
	return text
}

// loginTimeout bounds one login of a start or readiness check.
const loginTimeout = 5 * time.Second

// dial connects to s once and says how to start it if it is down.
func (s service) dial(ctx context.Context) error {
	addr, err := hostPort(s.rawURL, s.defaultPort)
	if err != nil {
		return fmt.Errorf("%s: bad URL %s: %w", s.name, redactURL(s.rawURL), err)
	}
	d := net.Dialer{Timeout: 2 * time.Second}
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		_, port, _ := net.SplitHostPort(addr)
		return fmt.Errorf("%s is not reachable at %s.\n  Start it with:  %s\n  or all services: docker compose -f infra/docker-compose.yml up -d", s.name, addr, s.debian(port))
	}
	return c.Close()
}

// loginPostgres connects and pings. A database that does not exist yet
// still proves the login (the server checks it after the password), and
// rtstack creates it.
func loginPostgres(ctx context.Context, rawURL string) error {
	conn, err := pgx.Connect(ctx, rawURL)
	if err != nil {
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == "3D000" { // invalid_catalog_name
			return nil
		}
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	return conn.Ping(ctx)
}

// loginRedis sends PING on a connection that authenticated with the URL's
// credentials.
func loginRedis(ctx context.Context, rawURL string) error {
	opts, err := redis.ParseURL(rawURL)
	if err != nil {
		return err
	}
	opts.MaxRetries = -1 // one attempt: a refusal is the answer
	rdb := redis.NewClient(opts)
	defer rdb.Close()
	return rdb.Ping(ctx).Err()
}

// loginRabbit opens and closes one AMQP connection.
func loginRabbit(ctx context.Context, rawURL string) error {
	conn, err := amqp.DialConfig(rawURL, amqp.Config{
		Dial: func(network, addr string) (net.Conn, error) {
			c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			if dl, ok := ctx.Deadline(); ok {
				_ = c.SetDeadline(dl) // bounds the handshake; amqp clears it once open
			}
			return c, nil
		},
	})
	if err != nil {
		return err
	}
	return conn.Close()
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
