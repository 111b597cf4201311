package main

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/rtstack/rtstack/gateway/api"
	"github.com/rtstack/rtstack/gateway/auth"
	"github.com/rtstack/rtstack/internal/httpserve"
)

// metricsHandler serves reg, in the OpenMetrics format to scrapers that ask
// for it (exemplars, _created series).
func metricsHandler(reg *prometheus.Registry) http.Handler {
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{EnableOpenMetrics: true})
}

// withOps runs run beside an HTTP server on METRICS_ADDR serving /metrics,
// /healthz and /readyz, for the processes without the gateway's server
// (project, react, work). /readyz checks that the services in need
// ("kafka" or a name of services) are reachable. With METRICS_ADDR empty it
// returns run.
func withOps(ctx context.Context, p *parts, run func(context.Context) error, need ...string) (func(context.Context) error, error) {
	if p.cfg.MetricsAddr == "" {
		return run, nil
	}
	h, err := opsHandler(p, need)
	if err != nil {
		return nil, err
	}
	ln, err := (&net.ListenConfig{}).Listen(ctx, "tcp", p.cfg.MetricsAddr)
	if err != nil {
		return nil, fmt.Errorf("listen on METRICS_ADDR %s: %w", p.cfg.MetricsAddr, err)
	}
	srv, err := httpserve.New(h, p.cfg.limits.http())
	if err != nil {
		_ = ln.Close()
		return nil, err
	}
	p.log.Info("serving /metrics, /healthz, /readyz", "url", "http://"+ln.Addr().String())
	serve := func(context.Context) error {
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("metrics server: %w", err)
		}
		return nil
	}
	// Serve ends only on Shutdown, when the others end.
	stop := func(ctx context.Context) error {
		<-ctx.Done()
		sdCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownTimeout)
		defer cancel()
		return srv.Shutdown(sdCtx)
	}
	return all(run, serve, stop), nil
}

// serviceChecks are readiness checks that log in to each service the
// process needs, except those named in covered (checked by a pool of its
// own).
func serviceChecks(p *parts, covered ...string) []api.Check {
	var checks []api.Check
	for _, n := range p.need {
		if !slices.Contains(covered, n) {
			s := services(p.cfg, n)[0]
			checks = append(checks, api.Check{Name: strings.ToLower(s.name), Check: s.check})
		}
	}
	return checks
}

// opsHandler is the mux of withOps. Health comes from the API's handler,
// which verifies tokens: it gets a random key, so no token is ever valid
// there, and only /healthz and /readyz are routed to it.
func opsHandler(p *parts, need []string) (http.Handler, error) {
	var checks []api.Check
	for _, n := range need {
		if n != "kafka" {
			s := services(p.cfg, n)[0]
			checks = append(checks, api.Check{Name: s.name, Check: s.check})
			continue
		}
		kc, err := p.producer()
		if err != nil {
			return nil, err
		}
		p.closers = append(p.closers, kc.Close)
		checks = append(checks, api.Check{Name: "Kafka", Check: func(ctx context.Context) error { return kc.Ping(ctx) }})
	}
	keys, err := auth.NewKeys(rand.Text())
	if err != nil {
		return nil, err
	}
	health, err := api.New(api.Config{Keys: keys, Ready: checks, Logger: p.log.With("component", "ops")})
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", metricsHandler(p.reg))
	mux.Handle("/healthz", health)
	mux.Handle("/readyz", health)
	return mux, nil
}
