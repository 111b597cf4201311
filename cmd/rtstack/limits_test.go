package main

import (
	"flag"
	"testing"

	"golang.org/x/time/rate"

	"github.com/rtstack/rtstack/gateway"
)

// The limit settings reach the gateway as it reads them: RATE_LIMIT=0 is
// unlimited, not the gateway's default.
func TestLimitsReachTheGateway(t *testing.T) {
	var l limits
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	l.register(fs)
	if err := fs.Parse([]string{"-rate-limit", "0", "-user-rate-limit", "7", "-user-conn-limit", "3", "-rooms-per-conn", "4", "-subscriptions-per-conn", "5", "-max-inflight", "6"}); err != nil {
		t.Fatal(err)
	}
	var cfg gateway.Config
	l.gateway(&cfg)
	if cfg.RateLimit != rate.Inf || cfg.UserRateLimit != 7 || cfg.UserConnLimit != 3 || cfg.MaxRooms != 4 || cfg.MaxSubscriptions != 5 || cfg.MaxInflight != 6 {
		t.Fatalf("gateway limits %v %v %d %d %d %d", cfg.RateLimit, cfg.UserRateLimit, cfg.UserConnLimit, cfg.MaxRooms, cfg.MaxSubscriptions, cfg.MaxInflight)
	}
	if cfg.SendQueueBytes != gateway.DefaultSendQueueBytes || cfg.MaxRecoveries != gateway.DefaultMaxRecoveries {
		t.Fatalf("unset limits are not the gateway's defaults: %d %d", cfg.SendQueueBytes, cfg.MaxRecoveries)
	}
}
