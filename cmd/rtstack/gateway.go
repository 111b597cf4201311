package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"

	"github.com/peterbourgon/ff/v3/ffcli"
	"github.com/twmb/franz-go/pkg/kgo"
	"golang.org/x/sync/errgroup"

	"github.com/rtstack/rtstack/commands"
	"github.com/rtstack/rtstack/gateway"
	"github.com/rtstack/rtstack/gateway/api"
	"github.com/rtstack/rtstack/gateway/dedupe"
	"github.com/rtstack/rtstack/gateway/presence"
	"github.com/rtstack/rtstack/infra/kafka"
	"github.com/rtstack/rtstack/internal/httpserve"
	"github.com/rtstack/rtstack/projections/postgres"
	"github.com/rtstack/rtstack/schemas"
	"github.com/rtstack/rtstack/web"
)

func gatewayCommand() *ffcli.Command {
	var cfg config
	return command("gateway", "gateway", "run the WebSocket gateway and HTTP API alone", &cfg, nil,
		func(ctx context.Context, _ []string) error {
			p, err := openParts(ctx, &cfg, true, "postgres", "redis")
			if err != nil {
				return err
			}
			defer p.close()
			if _, err := ensureTopic(ctx, &cfg, p.log, cfg.brokers()); err != nil {
				return err
			}
			gw, err := buildGateway(ctx, p)
			if err != nil {
				return err
			}
			return runUntilDone(ctx, p, gw.run, gw.shutdown)
		})
}

// gatewayPart is the HTTP side of rtstack: WebSocket, API, registry, UI,
// metrics, presence.
type gatewayPart struct {
	p        *parts
	srv      *http.Server
	ln       net.Listener
	ws       *gateway.Server
	presence *presence.Tracker
	producer *kgo.Client
}

func buildGateway(ctx context.Context, p *parts) (*gatewayPart, error) {
	cfg := p.cfg
	keys, err := cfg.keys()
	if err != nil {
		return nil, err
	}
	pg, err := p.postgres(ctx)
	if err != nil {
		return nil, err
	}
	rp, err := p.redisProjection(ctx)
	if err != nil {
		return nil, err
	}
	rdb, err := p.redis()
	if err != nil {
		return nil, err
	}
	producer, err := p.producer()
	if err != nil {
		return nil, err
	}
	p.closers = append(p.closers, producer.Close)
	kr, err := p.keyring()
	if err != nil {
		return nil, err
	}
	handler, err := commands.NewHandler(commands.Config{
		Log:                  kafka.NewLog(producer, p.codec, cfg.Topic),
		Authors:              pg,
		Members:              pg,
		Outcomes:             dedupe.New(rdb, cfg.RedisPrefix+"dedupe:", dedupe.DefaultTTL),
		AllowPrivateWebhooks: cfg.allowPrivate(),
		Sealer:               kr,
		Webhooks:             pg,
		Reactions:            pg,
		MaxWebhooksPerRoom:   cfg.WebhooksPerRoom,
	})
	if err != nil {
		return nil, err
	}
	host, _ := os.Hostname()
	tracker, err := presence.New(presence.Config{Redis: rdb, Prefix: cfg.RedisPrefix + "live:", GatewayID: fmt.Sprintf("%s-%d", host, os.Getpid()),
		Logger: p.log.With("component", "presence"), Registerer: p.registerer("presence")})
	if err != nil {
		return nil, err
	}
	gwCfg := gateway.Config{
		Kafka:          cfg.kafkaConfig(p.log),
		Topic:          cfg.Topic,
		Codec:          p.codec,
		Commands:       handler,
		Keys:           keys,
		AllowedOrigins: cfg.origins(),
		Boards:         rp,
		BoardChanges:   rp,
		Presence:       tracker,
		Signals:        tracker,
		Logger:         p.log,
		Registerer:     p.registerer("gateway"),
	}
	cfg.limits.gateway(&gwCfg)
	ws, err := gateway.New(gwCfg)
	if err != nil {
		return nil, err
	}
	apiHandler, err := api.New(api.Config{
		Keys:        keys,
		History:     pg,
		Counters:    rp,
		Leaderboard: rp,
		Webhooks:    handler,
		WebhookList: webhookList{pg},
		Rebuilder:   newRebuilder(p),
		Ready: append([]api.Check{
			{Name: "postgres", Check: func(ctx context.Context) error { return pg.Pool().Ping(ctx) }},
			{Name: "redis", Check: func(ctx context.Context) error { return rdb.Ping(ctx).Err() }},
			{Name: "kafka", Check: func(ctx context.Context) error { return producer.Ping(ctx) }},
		}, serviceChecks(p, "postgres", "redis")...), // and what else the process uses (RabbitMQ under dev)
		MaxBodyBytes: cfg.limits.HTTPMaxBodyBytes,
		DevLogin:     cfg.dev,
		DevTokenTTL:  cfg.DevTokenTTL,
		Logger:       p.log.With("component", "api"),
		Registerer:   p.registerer("api"),
	})
	if err != nil {
		return nil, err
	}

	ln, err := (&net.ListenConfig{}).Listen(ctx, "tcp", cfg.HTTPAddr)
	if err != nil {
		return nil, fmt.Errorf("listen on HTTP_ADDR %s: %w", cfg.HTTPAddr, err)
	}
	srv, err := httpserve.New(gatewayMux(p, ws, apiHandler), cfg.limits.http())
	if err != nil {
		_ = ln.Close()
		return nil, err
	}
	return &gatewayPart{p: p, srv: srv, ln: ln, ws: ws, presence: tracker, producer: producer}, nil
}

func presenceFrame(room string, users []string) []byte {
	b, _ := json.Marshal(struct {
		Type  string   `json:"type"`
		Room  string   `json:"room"`
		Users []string `json:"users"`
	}{"presence", room, users})
	return b
}

// url is where the gateway serves, for the start-up message.
func (g *gatewayPart) url() string { return "http://" + g.ln.Addr().String() }

func (g *gatewayPart) run(ctx context.Context) error {
	eg, ctx := errgroup.WithContext(ctx)
	eg.Go(func() error { return ignoreCanceled(g.ws.Run(ctx)) })
	eg.Go(func() error {
		return ignoreCanceled(g.presence.Run(ctx, g.ws.BroadcastPresence,
			presence.Deliver(g.ws.DeliverToUser),
			presence.Relay(g.ws.BroadcastRoom),
			// Only 0↔1 transitions are broadcast; a user's second tab gets
			// the current list on its own.
			presence.Welcome(func(room, user string, users []string) {
				g.ws.DeliverToUser(user, presenceFrame(room, users))
			})))
	})
	eg.Go(func() error {
		if err := g.srv.Serve(g.ln); !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("http server: %w", err)
		}
		return nil
	})
	eg.Go(func() error {
		// Serve ends only on Shutdown: when another component failed (not a
		// signal, where runUntilDone drains first), drain here. Shutdown is
		// idempotent, so both paths may call it.
		<-ctx.Done()
		sdCtx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
		defer cancel()
		return g.shutdown(sdCtx)
	})
	g.p.log.Info("gateway listening", "url", g.url(), "websocket", "ws://"+g.ln.Addr().String()+"/ws?token=…")
	return eg.Wait()
}

// shutdown stops accepting, tells WebSocket clients "going away" and waits
// for in-flight appends, bounded by ctx.
func (g *gatewayPart) shutdown(ctx context.Context) error {
	errHTTP := g.srv.Shutdown(ctx) // stop accepting; WebSockets are hijacked, not waited for
	errWS := g.ws.Shutdown(ctx)
	return errors.Join(errHTTP, errWS)
}

func ignoreCanceled(err error) error {
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

// webhookList serves the API's webhook list from the Postgres projection.
type webhookList struct{ pg *postgres.Projection }

func (l webhookList) ListWebhooks(ctx context.Context, room string) ([]api.Webhook, error) {
	hooks, err := l.pg.Webhooks(ctx, room)
	if err != nil {
		return nil, err
	}
	out := make([]api.Webhook, len(hooks))
	for i, h := range hooks {
		out[i] = api.Webhook{ID: h.ID, URL: h.URL, Created: h.Created}
	}
	return out, nil
}

// gatewayMux routes the gateway's one HTTP listener: the WebSocket, the API
// and its probes, the metrics, the schema registry's read API (unless a real
// registry is configured) and the web client.
func gatewayMux(p *parts, ws, apiHandler http.Handler) *http.ServeMux {
	mux := http.NewServeMux()
	mux.Handle("/ws", ws)
	mux.Handle("/api/", apiHandler)
	mux.Handle("/healthz", apiHandler)
	mux.Handle("/readyz", apiHandler)
	mux.Handle("/metrics", metricsHandler(p.reg))
	if p.cfg.SchemaRegistryURL == "" {
		reg := p.codec.Registry().Handler()
		for _, path := range schemas.RegistryPaths() {
			mux.Handle(path, reg)
		}
	}
	mux.Handle("/", web.Handler(web.Options{DevLogin: p.cfg.dev, EmbedOrigins: p.cfg.origins()}))
	return mux
}
