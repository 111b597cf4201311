package main

import (
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/time/rate"
)

// config is the whole environment of rtstack. Every field is a flag, and
// every flag is also an environment variable (ff: -kafka-brokers ↔
// KAFKA_BROKERS). It is read once, here, and passed down as component
// Config structs.
type config struct {
	KafkaBrokers        string
	BrokerAddr          string
	SchemaRegistryURL   string
	RetryDelays         string
	WebhookAllowPrivate string // "" = the mode's default
	NotifyURL           string
	DataDir             string
	PostgresURL         string
	RedisURL            string
	RedisPrefix         string
	RabbitURL           string
	RabbitPrefix        string
	HTTPAddr            string
	JWTSecret           string
	Topic               string
	Partitions          int
	AllowedOrigins      string
	RateLimit           float64
	LogLevel            string

	dev bool // set by `rtstack dev`: permissive defaults for one machine
}

func (c *config) register(fs *flag.FlagSet) {
	fs.StringVar(&c.KafkaBrokers, "kafka-brokers", "", "comma-separated seed brokers of a real Kafka cluster (empty: the embedded broker at -broker-addr)")
	fs.StringVar(&c.BrokerAddr, "broker-addr", "127.0.0.1:9092", "where the embedded broker listens (dev, broker) or is reached")
	fs.StringVar(&c.SchemaRegistryURL, "schema-registry-url", "", "a Confluent-compatible schema registry (empty: rtstack serves the registry read API itself)")
	fs.StringVar(&c.RetryDelays, "retry-delays", "1s,10s,60s", "delays between task attempts; attempts = delays + 1, then the DLQ")
	fs.StringVar(&c.WebhookAllowPrivate, "webhook-allow-private", "", "allow webhook targets on loopback/private addresses (default true under dev, else false)")
	fs.StringVar(&c.NotifyURL, "notify-url", "", "push endpoint for mention notifications of offline users")
	fs.StringVar(&c.DataDir, "data-dir", "./data", "embedded broker's log (DATA_DIR/kafka) and other local state")
	fs.StringVar(&c.PostgresURL, "postgres-url", "postgres://postgres@127.0.0.1:5432/rtstack?sslmode=disable", "Postgres for projections and task records (database created if missing)")
	fs.StringVar(&c.RedisURL, "redis-url", "redis://127.0.0.1:6379/0", "Redis for counters, leaderboards and presence")
	fs.StringVar(&c.RedisPrefix, "redis-prefix", "rtstack:", "prefix of every Redis key and channel (projection, presence, dedupe), so deployments can share a Redis")
	fs.StringVar(&c.RabbitPrefix, "rabbit-prefix", "rtstack.", "prefix of every RabbitMQ queue name")
	fs.StringVar(&c.RabbitURL, "rabbit-url", "amqp://guest:guest@127.0.0.1:5672/", "RabbitMQ for side-effect tasks")
	fs.StringVar(&c.HTTPAddr, "http-addr", "127.0.0.1:8080", "WebSocket, HTTP API, web UI, /metrics")
	fs.StringVar(&c.JWTSecret, "jwt-secret", "", "HS256 key for tokens (\"dev\" under rtstack dev; required otherwise)")
	fs.StringVar(&c.Topic, "topic", "chat.events", "the event log")
	fs.IntVar(&c.Partitions, "partitions", 6, "partition count when the log is created (fixed afterwards)")
	fs.StringVar(&c.AllowedOrigins, "allowed-origins", "", "comma-separated WebSocket origins (\"*\" under dev; empty: same origin only)")
	fs.Float64Var(&c.RateLimit, "rate-limit", 50, "client frames per second per WebSocket connection (burst 2×); 0 = unlimited (benchmarks)")
	fs.StringVar(&c.LogLevel, "log-level", "info", "debug, info, warn or error")
}

// embedded reports whether the embedded broker is the log.
func (c *config) embedded() bool { return strings.TrimSpace(c.KafkaBrokers) == "" }

// brokers returns the seed brokers to dial.
func (c *config) brokers() []string {
	if c.embedded() {
		return []string{c.BrokerAddr}
	}
	var out []string
	for _, b := range strings.Split(c.KafkaBrokers, ",") {
		if b = strings.TrimSpace(b); b != "" {
			out = append(out, b)
		}
	}
	return out
}

func (c *config) jwtSecret() string {
	if c.JWTSecret == "" && c.dev {
		return "dev"
	}
	return c.JWTSecret
}

func (c *config) allowPrivate() bool {
	if c.WebhookAllowPrivate == "" {
		return c.dev
	}
	v, _ := strconv.ParseBool(c.WebhookAllowPrivate)
	return v
}

func (c *config) origins() []string {
	if c.AllowedOrigins == "" && c.dev {
		return []string{"*"}
	}
	var out []string
	for _, o := range strings.Split(c.AllowedOrigins, ",") {
		if o = strings.TrimSpace(o); o != "" {
			out = append(out, o)
		}
	}
	return out
}

// rateLimit is RATE_LIMIT for the gateway, where 0 would mean its default.
func (c *config) rateLimit() rate.Limit {
	if c.RateLimit == 0 {
		return rate.Inf
	}
	return rate.Limit(c.RateLimit)
}

func (c *config) retryDelays() ([]time.Duration, error) {
	var out []time.Duration
	for _, s := range strings.Split(c.RetryDelays, ",") {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		d, err := time.ParseDuration(s)
		if err != nil || d <= 0 {
			return nil, fmt.Errorf("RETRY_DELAYS: %q is not a positive duration", s)
		}
		out = append(out, d)
	}
	return out, nil
}

// validate reports every problem at once. needSecret is false for commands
// that never verify a token.
func (c *config) validate(needSecret bool) error {
	var errs []error
	if needSecret && c.jwtSecret() == "" {
		errs = append(errs, errors.New("JWT_SECRET is required (it is \"dev\" only under rtstack dev)"))
	}
	if c.Partitions < 1 {
		errs = append(errs, fmt.Errorf("PARTITIONS must be at least 1, not %d", c.Partitions))
	}
	if c.Topic == "" {
		errs = append(errs, errors.New("TOPIC must not be empty"))
	}
	if _, err := c.retryDelays(); err != nil {
		errs = append(errs, err)
	}
	if c.WebhookAllowPrivate != "" {
		if _, err := strconv.ParseBool(c.WebhookAllowPrivate); err != nil {
			errs = append(errs, fmt.Errorf("WEBHOOK_ALLOW_PRIVATE: %q is not a boolean", c.WebhookAllowPrivate))
		}
	}
	if c.RateLimit < 0 {
		errs = append(errs, fmt.Errorf("RATE_LIMIT must not be negative, not %v", c.RateLimit))
	}
	if len(c.brokers()) == 0 {
		errs = append(errs, errors.New("no Kafka brokers"))
	}
	return errors.Join(errs...)
}

func (c *config) logger() *slog.Logger {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(c.LogLevel)); err != nil {
		lv = slog.LevelInfo
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lv}))
}
