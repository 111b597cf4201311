package main

import (
	"errors"
	"flag"
	"fmt"
	"time"

	"golang.org/x/time/rate"

	"github.com/rtstack/rtstack/gateway"
	"github.com/rtstack/rtstack/internal/httpserve"
)

// limits are the settings that bound what one client, one user and one
// request may cost the gateway and the HTTP servers. Their defaults are the
// components' own.
type limits struct {
	RateLimit          float64
	UserRateLimit      float64
	UserConnLimit      int
	RoomsPerConn       int
	SubscriptionsPer   int
	SendQueueBytes     int
	SlowClientWait     time.Duration
	MaxInflight        int
	MaxRecoveries      int
	RecoveryFetchBytes int
	HTTPReadHeader     time.Duration
	HTTPRead           time.Duration
	HTTPWrite          time.Duration
	HTTPIdle           time.Duration
	HTTPMaxBodyBytes   int64
}

func (l *limits) register(fs *flag.FlagSet) {
	fs.Float64Var(&l.RateLimit, "rate-limit", gateway.DefaultRateLimit, "client frames per second per WebSocket connection (burst 2x); 0 = unlimited")
	fs.Float64Var(&l.UserRateLimit, "user-rate-limit", gateway.DefaultUserRateLimit, "client frames per second across one user's connections to a gateway (burst 2x); 0 = unlimited")
	fs.IntVar(&l.UserConnLimit, "user-conn-limit", gateway.DefaultUserConnLimit, "WebSocket connections per user per gateway; over it HTTP 429 before the upgrade")
	fs.IntVar(&l.RoomsPerConn, "rooms-per-conn", gateway.DefaultMaxRooms, "rooms one WebSocket connection may have joined")
	fs.IntVar(&l.SubscriptionsPer, "subscriptions-per-conn", gateway.DefaultMaxSubscriptions, "board channels one WebSocket connection may subscribe to")
	fs.IntVar(&l.SendQueueBytes, "send-queue-bytes", gateway.DefaultSendQueueBytes, "bytes queued for one WebSocket connection; live traffic over it closes the connection 4008, a recovery waits under it")
	fs.DurationVar(&l.SlowClientWait, "slow-client-wait", gateway.DefaultSlowClientWait, "how long a full send queue may go undrained before the connection is closed 4008")
	fs.IntVar(&l.MaxInflight, "max-inflight", gateway.DefaultMaxInflight, "room actions (send, edit, delete, react) one WebSocket connection may have awaiting their answer; over it the next frame waits")
	fs.IntVar(&l.MaxRecoveries, "max-recoveries", gateway.DefaultMaxRecoveries, "join ... since recoveries running at once per gateway")
	fs.IntVar(&l.RecoveryFetchBytes, "recovery-fetch-bytes", gateway.DefaultRecoveryFetchBytes, "bytes of the log one recovery reads at a time")
	fs.DurationVar(&l.HTTPReadHeader, "http-read-header-timeout", httpserve.DefaultReadHeaderTimeout, "time to read a request's header")
	fs.DurationVar(&l.HTTPRead, "http-read-timeout", httpserve.DefaultReadTimeout, "time to read a whole request, body included (not WebSockets)")
	fs.DurationVar(&l.HTTPWrite, "http-write-timeout", httpserve.DefaultWriteTimeout, "time to answer a request (not WebSockets)")
	fs.DurationVar(&l.HTTPIdle, "http-idle-timeout", httpserve.DefaultIdleTimeout, "time a kept-alive connection may wait for its next request")
	fs.Int64Var(&l.HTTPMaxBodyBytes, "http-max-body-bytes", httpserve.DefaultMaxBodyBytes, "largest request body on every HTTP endpoint")
}

func (l *limits) validate() error {
	var errs []error
	for _, f := range []struct {
		name string
		v    float64
		min  float64
	}{
		{"RATE_LIMIT", l.RateLimit, 0}, {"USER_RATE_LIMIT", l.UserRateLimit, 0},
		{"USER_CONN_LIMIT", float64(l.UserConnLimit), 1}, {"ROOMS_PER_CONN", float64(l.RoomsPerConn), 1},
		{"SUBSCRIPTIONS_PER_CONN", float64(l.SubscriptionsPer), 1}, {"SEND_QUEUE_BYTES", float64(l.SendQueueBytes), 1},
		{"SLOW_CLIENT_WAIT", float64(l.SlowClientWait), 1}, {"MAX_INFLIGHT", float64(l.MaxInflight), 1},
		{"MAX_RECOVERIES", float64(l.MaxRecoveries), 1},
		{"RECOVERY_FETCH_BYTES", float64(l.RecoveryFetchBytes), 1},
		{"HTTP_READ_HEADER_TIMEOUT", float64(l.HTTPReadHeader), 1}, {"HTTP_READ_TIMEOUT", float64(l.HTTPRead), 1},
		{"HTTP_WRITE_TIMEOUT", float64(l.HTTPWrite), 1}, {"HTTP_IDLE_TIMEOUT", float64(l.HTTPIdle), 1},
		{"HTTP_MAX_BODY_BYTES", float64(l.HTTPMaxBodyBytes), 1},
	} {
		if f.v < f.min {
			errs = append(errs, fmt.Errorf("%s must be at least %v, not %v", f.name, f.min, f.v))
		}
	}
	return errors.Join(errs...)
}

// limitOf is a rate setting as the gateway takes it: 0 is unlimited.
func limitOf(perSecond float64) rate.Limit {
	if perSecond == 0 {
		return rate.Inf
	}
	return rate.Limit(perSecond)
}

// gateway sets cfg's limits from the settings.
func (l *limits) gateway(cfg *gateway.Config) {
	cfg.RateLimit, cfg.UserRateLimit = limitOf(l.RateLimit), limitOf(l.UserRateLimit)
	cfg.UserConnLimit, cfg.MaxRooms, cfg.MaxSubscriptions = l.UserConnLimit, l.RoomsPerConn, l.SubscriptionsPer
	cfg.SendQueueBytes, cfg.SlowClientWait, cfg.MaxInflight = l.SendQueueBytes, l.SlowClientWait, l.MaxInflight
	cfg.MaxRecoveries, cfg.RecoveryFetchBytes = l.MaxRecoveries, l.RecoveryFetchBytes
}

// http is the bounds of every HTTP server of the process.
func (l *limits) http() httpserve.Config {
	return httpserve.Config{
		ReadHeaderTimeout: l.HTTPReadHeader, ReadTimeout: l.HTTPRead, WriteTimeout: l.HTTPWrite,
		IdleTimeout: l.HTTPIdle, MaxBodyBytes: l.HTTPMaxBodyBytes,
	}
}
