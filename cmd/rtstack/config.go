package main

import (
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/rtstack/rtstack/commands"
	"github.com/rtstack/rtstack/gateway/api"
	"github.com/rtstack/rtstack/gateway/auth"
	"github.com/rtstack/rtstack/infra/kafka"
	"github.com/rtstack/rtstack/infra/telemetry"
	"github.com/rtstack/rtstack/projections/postgres"
	redisproj "github.com/rtstack/rtstack/projections/redis"
	"github.com/rtstack/rtstack/tasks"
	"github.com/rtstack/rtstack/tasks/rabbit"
)

// config is the whole environment of rtstack. Every field is a flag, and
// every flag is also an environment variable (ff: -kafka-brokers ↔
// KAFKA_BROKERS). It is read once, here, and passed down as component
// Config structs.
type config struct {
	KafkaBrokers        string
	KafkaSASLMechanism  string
	KafkaSASLUser       string
	KafkaSASLPassword   string
	KafkaTLS            bool
	KafkaTLSCA          string
	KafkaTLSCert        string
	KafkaTLSKey         string
	KafkaCompression    string
	BrokerAddr          string
	BrokerFsync         bool
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
	MetricsAddr         string
	JWTSecret           string
	JWTAudience         string
	JWTIssuer           string
	DevAllowRemote      bool
	DevTokenTTL         time.Duration
	Topic               string
	Partitions          int
	AllowedOrigins      string
	LogLevel            string
	WebhooksPerRoom     int
	WebhookSecretKey    string
	limits              limits

	dev bool // set by `rtstack dev`: permissive defaults for one machine
}

// Defaults that no component owns: the composition root's alone.
const (
	defaultDataDir  = "./data"
	defaultRedisURL = "redis://127.0.0.1:6379/0"
	defaultHTTPAddr = "127.0.0.1:8080"
	defaultLogLevel = "info"
)

func (c *config) register(fs *flag.FlagSet) {
	fs.StringVar(&c.KafkaBrokers, "kafka-brokers", "", "comma-separated seed brokers of a real Kafka cluster (empty: the embedded broker at -broker-addr)")
	fs.StringVar(&c.KafkaSASLMechanism, "kafka-sasl-mechanism", "", "SASL mechanism to the brokers: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 (default SCRAM-SHA-256 when a user is set)")
	fs.StringVar(&c.KafkaSASLUser, "kafka-sasl-user", "", "SASL user; with a password, the embedded broker requires SCRAM with these credentials")
	fs.StringVar(&c.KafkaSASLPassword, "kafka-sasl-password", "", "SASL password")
	fs.BoolVar(&c.KafkaTLS, "kafka-tls", false, "TLS to the brokers of a real cluster")
	fs.StringVar(&c.KafkaTLSCA, "kafka-tls-ca", "", "PEM file of the CA that signed the brokers' certificates (empty: the system's roots)")
	fs.StringVar(&c.KafkaTLSCert, "kafka-tls-cert", "", "PEM client certificate for mutual TLS (with -kafka-tls-key)")
	fs.StringVar(&c.KafkaTLSKey, "kafka-tls-key", "", "PEM private key of -kafka-tls-cert")
	fs.StringVar(&c.KafkaCompression, "kafka-compression", kafka.DefaultCompression, "producer compression: none, gzip, snappy, lz4 or zstd")
	fs.StringVar(&c.BrokerAddr, "broker-addr", kafka.DefaultBrokerAddr, "where the embedded broker listens (dev, broker) or is reached")
	fs.BoolVar(&c.BrokerFsync, "broker-fsync", true, "the embedded broker syncs each produce to disk before acknowledging it, so an ack survives a power cut (false: faster, acks survive a crash of the process only)")
	fs.StringVar(&c.SchemaRegistryURL, "schema-registry-url", "", "a Confluent-compatible schema registry (empty: rtstack serves the registry read API itself)")
	fs.StringVar(&c.RetryDelays, "retry-delays", formatDelays(tasks.DefaultRetryDelays), "delays between task attempts; attempts = delays + 1, then the DLQ")
	fs.StringVar(&c.WebhookAllowPrivate, "webhook-allow-private", "", "allow webhook targets on loopback/private addresses (default true under dev, else false)")
	fs.StringVar(&c.NotifyURL, "notify-url", "", "push endpoint for mention notifications of offline users")
	fs.StringVar(&c.DataDir, "data-dir", defaultDataDir, "embedded broker's log (DATA_DIR/kafka) and other local state")
	fs.StringVar(&c.PostgresURL, "postgres-url", postgres.DefaultURL, "Postgres for projections and task records (database created if missing)")
	fs.StringVar(&c.RedisURL, "redis-url", defaultRedisURL, "Redis for counters, leaderboards and presence")
	fs.StringVar(&c.RedisPrefix, "redis-prefix", redisproj.DefaultPrefix, "prefix of every Redis key and channel (projection, presence, dedupe), so deployments can share a Redis; ends with ':'")
	fs.StringVar(&c.RabbitPrefix, "rabbit-prefix", rabbit.DefaultPrefix, "prefix of every RabbitMQ queue name (PREFIX+\"tasks\"); ends with '.'")
	fs.StringVar(&c.RabbitURL, "rabbit-url", rabbit.DefaultURL, "RabbitMQ for side-effect tasks")
	fs.StringVar(&c.HTTPAddr, "http-addr", defaultHTTPAddr, "WebSocket, HTTP API, web UI, /metrics")
	fs.StringVar(&c.MetricsAddr, "metrics-addr", "", "where project, react and work serve /metrics, /healthz and /readyz (empty: not served; the gateway serves them on -http-addr)")
	fs.StringVar(&c.JWTSecret, "jwt-secret", "", "HS256 key for tokens, at least 32 bytes (\"dev\" under rtstack dev; required otherwise)")
	fs.StringVar(&c.JWTAudience, "jwt-audience", "", "when set, tokens must carry this aud (and rtstack token sets it)")
	fs.StringVar(&c.JWTIssuer, "jwt-issuer", "", "when set, tokens must carry this iss (and rtstack token sets it)")
	fs.BoolVar(&c.DevAllowRemote, "dev-allow-remote", false, "let rtstack dev listen on a non-loopback HTTP_ADDR (its JWT secret is public)")
	fs.DurationVar(&c.DevTokenTTL, "dev-token-ttl", api.DefaultDevTokenTTL, "validity of the tokens rtstack dev's sign-in by name hands out (the page renews them before expiry)")
	fs.StringVar(&c.Topic, "topic", kafka.DefaultTopic, "the event log")
	fs.IntVar(&c.Partitions, "partitions", kafka.DefaultPartitions, "partition count when the log is created (fixed afterwards)")
	fs.StringVar(&c.AllowedOrigins, "allowed-origins", "", "comma-separated WebSocket origins (\"*\" under dev; empty: same origin only)")
	fs.StringVar(&c.LogLevel, "log-level", defaultLogLevel, "debug, info, warn or error")
	fs.IntVar(&c.WebhooksPerRoom, "webhooks-per-room", commands.DefaultMaxWebhooksPerRoom, "webhooks a room may have; the next is refused with too_many_webhooks")
	fs.StringVar(&c.WebhookSecretKey, "webhook-secret-key", "", "keys sealing webhook secrets, ID:BASE64KEY[,…], the first seals (generated in DATA_DIR under dev; required otherwise)")
	c.limits.register(fs)
}

// formatDelays writes delays as RETRY_DELAYS reads them, whole seconds as
// "60s" rather than Duration's "1m0s".
func formatDelays(delays []time.Duration) string {
	out := make([]string, len(delays))
	for i, d := range delays {
		if d%time.Second == 0 {
			out[i] = fmt.Sprintf("%ds", d/time.Second)
		} else {
			out[i] = d.String()
		}
	}
	return strings.Join(out, ",")
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

// kafkaConfig is the configuration every Kafka client of the process is built
// from; log receives franz-go's warnings.
func (c *config) kafkaConfig(log *slog.Logger) kafka.ClientConfig {
	return kafka.ClientConfig{
		Brokers: c.brokers(),
		SASL:    c.sasl(),
		TLS: kafka.TLS{
			Enabled: c.KafkaTLS, CAFile: c.KafkaTLSCA, CertFile: c.KafkaTLSCert, KeyFile: c.KafkaTLSKey,
		},
		Compression: c.KafkaCompression,
		Logger:      log,
	}
}

func (c *config) sasl() kafka.SASL {
	return kafka.SASL{Mechanism: c.KafkaSASLMechanism, User: c.KafkaSASLUser, Password: c.KafkaSASLPassword}
}

// kcatAuth is what kcat needs on its command line to authenticate as
// rtstack does; the password is left to the shell.
func (c *config) kcatAuth() string {
	s := c.sasl()
	if !s.Enabled() {
		return ""
	}
	proto := "SASL_PLAINTEXT"
	if c.KafkaTLS {
		proto = "SASL_SSL"
	}
	return fmt.Sprintf(" -X security.protocol=%s -X sasl.mechanisms=%s -X sasl.username=%s -X sasl.password=\"$KAFKA_SASL_PASSWORD\"", proto, s.MechanismName(), s.User)
}

// brokerConfig configures the embedded broker.
func (c *config) brokerConfig(log *slog.Logger) kafka.BrokerConfig {
	return kafka.BrokerConfig{Addr: c.BrokerAddr, DataDir: c.DataDir, NoFsync: !c.BrokerFsync, SASL: c.sasl(), Logger: log}
}

// validateBroker reports what keeps the embedded broker from starting, in
// the settings' names.
func (c *config) validateBroker() error {
	err := c.brokerConfig(nil).Validate()
	if errors.Is(err, kafka.ErrOpenBroker) {
		return fmt.Errorf("BROKER_ADDR %s is reachable from other machines, and without credentials anyone there could read every event, append as any user and delete the topic: "+
			"set KAFKA_SASL_USER and KAFKA_SASL_PASSWORD (the embedded broker then requires SCRAM-SHA-256 or -512 with them), or listen on 127.0.0.1", c.BrokerAddr)
	}
	if err != nil {
		return fmt.Errorf("embedded broker (BROKER_ADDR, DATA_DIR, KAFKA_SASL_*): %w", err)
	}
	return nil
}

func (c *config) jwtSecret() string {
	if c.JWTSecret == "" && c.dev {
		return "dev"
	}
	return c.JWTSecret
}

// keys are the token keys every command that signs or verifies uses.
func (c *config) keys() (*auth.Keys, error) {
	return auth.NewKeys(c.jwtSecret(), auth.WithAudience(c.JWTAudience), auth.WithIssuer(c.JWTIssuer))
}

// checkSecret refuses a JWT secret too short to resist an offline guess
// from any token; rtstack dev's public "dev" is exempt (it listens on
// loopback only).
func (c *config) checkSecret() error {
	secret := c.jwtSecret()
	switch {
	case secret == "":
		return errors.New("JWT_SECRET is required (it is \"dev\" only under rtstack dev)")
	case !c.dev && len(secret) < auth.MinSecretBytes:
		return fmt.Errorf("JWT_SECRET is %d bytes; at least %d are required outside rtstack dev, or anyone holding one token can guess it (make one with: openssl rand -base64 48)",
			len(secret), auth.MinSecretBytes)
	}
	return nil
}

// checkDevListen refuses a non-loopback HTTP_ADDR under rtstack dev unless
// DEV_ALLOW_REMOTE: dev's secret is public, so anyone who can reach it can
// sign in as anyone, admin included.
func (c *config) checkDevListen() error {
	if !c.dev || c.DevAllowRemote {
		return nil
	}
	host, _, err := net.SplitHostPort(c.HTTPAddr)
	if err != nil {
		return fmt.Errorf("HTTP_ADDR %q: %w", c.HTTPAddr, err)
	}
	if ip, err := netip.ParseAddr(host); (err == nil && ip.IsLoopback()) || host == "localhost" {
		return nil
	}
	return fmt.Errorf("rtstack dev refuses HTTP_ADDR %s: it is not a loopback address, and dev's JWT secret is public, so anyone who reaches it could sign in as anyone; "+
		"listen on 127.0.0.1, or set DEV_ALLOW_REMOTE=true to accept that", c.HTTPAddr)
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

func (c *config) retryDelays() ([]time.Duration, error) {
	d, err := tasks.ParseRetryDelays(c.RetryDelays)
	if err != nil {
		return nil, fmt.Errorf("RETRY_DELAYS: %w", err)
	}
	return d, nil
}

// checkPrefix refuses a prefix that does not end with its separator: names
// are prefix+name, so "myapp" would make queues "myapptasks", and a scan or
// drop of "myapp*" would also take the keys of a deployment named "myapp2".
func checkPrefix(setting, prefix, sep string) error {
	if prefix != "" && !strings.HasSuffix(prefix, sep) {
		return fmt.Errorf("%s %q must end with %q (names are the prefix followed by the name, e.g. %q)", setting, prefix, sep, prefix+sep)
	}
	return nil
}

// validate reports every problem at once. needSecret is false for commands
// that never verify a token.
func (c *config) validate(needSecret bool) error {
	var errs []error
	if needSecret {
		if err := c.checkSecret(); err != nil {
			errs = append(errs, err)
		}
	}
	if err := c.checkDevListen(); err != nil {
		errs = append(errs, err)
	}
	if c.Partitions < 1 {
		errs = append(errs, fmt.Errorf("PARTITIONS must be at least 1, not %d", c.Partitions))
	}
	if c.WebhooksPerRoom < 1 {
		errs = append(errs, fmt.Errorf("WEBHOOKS_PER_ROOM must be at least 1, not %d", c.WebhooksPerRoom))
	}
	if c.Topic == "" {
		errs = append(errs, errors.New("TOPIC must not be empty"))
	}
	if _, err := c.retryDelays(); err != nil {
		errs = append(errs, err)
	}
	for _, err := range []error{checkPrefix("REDIS_PREFIX", c.RedisPrefix, ":"), checkPrefix("RABBIT_PREFIX", c.RabbitPrefix, ".")} {
		if err != nil {
			errs = append(errs, err)
		}
	}
	if c.WebhookAllowPrivate != "" {
		if _, err := strconv.ParseBool(c.WebhookAllowPrivate); err != nil {
			errs = append(errs, fmt.Errorf("WEBHOOK_ALLOW_PRIVATE: %q is not a boolean", c.WebhookAllowPrivate))
		}
	}
	if _, err := c.level(); err != nil {
		errs = append(errs, err)
	}
	errs = append(errs, c.limits.validate())
	if len(c.brokers()) == 0 {
		errs = append(errs, errors.New("no Kafka brokers"))
	} else if err := c.kafkaConfig(nil).Validate(); err != nil {
		errs = append(errs, fmt.Errorf("kafka client settings (KAFKA_SASL_*, KAFKA_TLS*, KAFKA_COMPRESSION): %w", err))
	}
	if c.embedded() && c.KafkaTLS {
		errs = append(errs, errors.New("KAFKA_TLS is for a real cluster (KAFKA_BROKERS): the embedded broker does not serve TLS"))
	}
	return errors.Join(errs...)
}

func (c *config) level() (slog.Level, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(c.LogLevel)); err != nil {
		return slog.LevelInfo, fmt.Errorf("LOG_LEVEL: %q is not debug, info, warn or error", c.LogLevel)
	}
	return lv, nil
}

// logger is the one logger of the process; components get it (or a child
// of it) injected and never build their own. JSON lines unless stderr is a
// terminal, trace ids on the lines of a traced context.
func (c *config) logger() *slog.Logger {
	lv, _ := c.level() // validated with the config
	return slog.New(telemetry.NewHandler(os.Stderr, lv, isTerminal(os.Stderr)))
}
