package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/rtstack/rtstack/infra/telemetry"
	"github.com/rtstack/rtstack/internal/keyring"
	"github.com/rtstack/rtstack/projections"
	"github.com/rtstack/rtstack/projections/postgres"
	redisproj "github.com/rtstack/rtstack/projections/redis"
	"github.com/rtstack/rtstack/schemas"
	"github.com/rtstack/rtstack/tasks/rabbit"
)

// parts holds what several subcommands build the same way. Each open*
// method is idempotent and registers its closer; close releases them in
// reverse order.
type parts struct {
	cfg     *config
	log     *slog.Logger
	reg     *prometheus.Registry
	codec   *schemas.Codec
	closers []func()
	// need are the services openParts checked: /readyz covers each.
	need []string

	pg  *postgres.Projection
	rdb *redis.Client
	rp  *redisproj.Projection
	kr  *keyring.Keyring
}

// openParts is the start of every subcommand that builds parts: it
// validates cfg (needSecret as for validate), checks that the services named
// in need ("postgres", "redis", "rabbitmq") are reachable and let us log in, and builds the
// parts. The caller closes them.
func openParts(ctx context.Context, cfg *config, needSecret bool, need ...string) (*parts, error) {
	if err := cfg.validate(needSecret); err != nil {
		return nil, err
	}
	if err := checkServices(ctx, services(cfg, need...)); err != nil {
		return nil, err
	}
	p, err := newParts(ctx, cfg)
	if err != nil {
		return nil, err
	}
	p.need = need
	return p, nil
}

func newParts(ctx context.Context, cfg *config) (*parts, error) {
	codec, err := newCodec(ctx, cfg)
	if err != nil {
		return nil, err
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	p := &parts{cfg: cfg, log: cfg.logger(), reg: reg, codec: codec}
	// Before any Kafka client: clients get their tracing hooks when built.
	shutdown, err := telemetry.Setup(ctx, telemetry.Config{Service: "rtstack", Export: tracesExported()})
	if err != nil {
		return nil, err
	}
	p.closers = append(p.closers, func() { // first in, last out: spans of the others' shutdown are flushed
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := shutdown(sctx); err != nil {
			p.log.Warn("flush traces", "err", err)
		}
	})
	return p, nil
}

// tracesExported reports whether the standard OpenTelemetry variables ask
// for traces to be exported: an OTLP endpoint, or an OTEL_TRACES_EXPORTER
// other than "none". The exporter reads the rest of them itself.
func tracesExported() bool {
	if e := os.Getenv("OTEL_TRACES_EXPORTER"); e != "" {
		return e != "none"
	}
	return os.Getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "" || os.Getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") != ""
}

func (p *parts) close() {
	for i := len(p.closers) - 1; i >= 0; i-- {
		p.closers[i]()
	}
	p.closers = nil
}

// registerer returns the metrics registry with a constant label naming the
// component, so several components' metrics of the same name can share it.
func (p *parts) registerer(component string) prometheus.Registerer {
	return prometheus.WrapRegistererWith(prometheus.Labels{"component": component}, p.reg)
}

func (p *parts) postgres(ctx context.Context) (*postgres.Projection, error) {
	if p.pg != nil {
		return p.pg, nil
	}
	pg, err := postgres.Open(ctx, postgres.Config{URL: p.cfg.PostgresURL, Logger: p.log})
	if err != nil {
		return nil, fmt.Errorf("postgres projection at %s: %w", redactURL(p.cfg.PostgresURL), err)
	}
	p.pg = pg
	p.closers = append(p.closers, pg.Close)
	return pg, nil
}

func (p *parts) redis() (*redis.Client, error) {
	if p.rdb != nil {
		return p.rdb, nil
	}
	opts, err := redis.ParseURL(p.cfg.RedisURL)
	if err != nil {
		return nil, fmt.Errorf("REDIS_URL: %w", err)
	}
	p.rdb = redis.NewClient(opts)
	p.closers = append(p.closers, func() { _ = p.rdb.Close() })
	return p.rdb, nil
}

func (p *parts) redisProjection(ctx context.Context) (*redisproj.Projection, error) {
	if p.rp != nil {
		return p.rp, nil
	}
	rdb, err := p.redis()
	if err != nil {
		return nil, err
	}
	rp, err := redisproj.Open(ctx, redisproj.Config{Redis: rdb, Prefix: p.cfg.RedisPrefix, Logger: p.log})
	if err != nil {
		return nil, fmt.Errorf("redis projection at %s: %w", redactURL(p.cfg.RedisURL), err)
	}
	p.rp = rp
	return rp, nil
}

// versioned returns the projection named target ("postgres" or "redis").
func (p *parts) versioned(ctx context.Context, target string) (projections.Versioned, error) {
	switch target {
	case "postgres":
		return p.postgres(ctx)
	case "redis":
		return p.redisProjection(ctx)
	}
	return nil, fmt.Errorf("unknown projection %q: want postgres or redis", target)
}

func (p *parts) rabbitConfig() rabbit.Config {
	delays, _ := p.cfg.retryDelays() // validated with the config
	return rabbit.Config{URL: p.cfg.RabbitURL, Prefix: p.cfg.RabbitPrefix, RetryDelays: delays}
}

// producer returns a client for appending to the log.
func (p *parts) producer() (*kgo.Client, error) {
	return newKafkaClient(p.cfg, p.log)
}

func isTerminal(f *os.File) bool {
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
