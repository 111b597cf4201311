package gateway

import (
	"strings"
	"testing"
	"time"

	"golang.org/x/time/rate"
)

func TestConfigDefaultsThenValidate(t *testing.T) {
	for _, tt := range []struct {
		name    string
		cfg     Config
		wantErr []string // substrings of the joined error; none: valid
		check   func(Config) bool
	}{
		{name: "zero names every required field",
			wantErr: []string{"Brokers is required", "Codec is required", "Commands is required", "Keys is required"}},
		{name: "documented defaults", cfg: Config{},
			check: func(c Config) bool {
				return c.Burst == 100 && c.UserBurst == 200 && c.RateLimit == DefaultRateLimit && c.PingInterval == DefaultPingInterval &&
					c.PongWait == DefaultPongWait && c.SendQueue == DefaultSendQueue && c.Topic == DefaultTopic &&
					c.TokenWarning == 30*time.Second
			}},
		{name: "burst follows a set rate", cfg: Config{RateLimit: 20},
			check: func(c Config) bool { return c.Burst == 40 }},
		{name: "an unlimited rate needs no burst", cfg: Config{RateLimit: rate.Inf, UserRateLimit: rate.Inf},
			check: func(c Config) bool { return c.Burst == 1 && c.UserBurst == 1 }},
		{name: "limits default", cfg: Config{},
			check: func(c Config) bool {
				return c.UserConnLimit == 32 && c.MaxRooms == 100 && c.MaxSubscriptions == 100 &&
					c.SendQueueBytes == 1<<20 && c.RecoveryFetchBytes == 64<<10 && c.UserRateLimit == 100
			}},
		{name: "unset ping fits under a short pong wait", cfg: Config{PongWait: 10 * time.Second},
			check: func(c Config) bool { return c.PingInterval == 9*time.Second }},
		{name: "a ping set over the pong wait is refused, not rewritten", cfg: Config{PingInterval: 90 * time.Second},
			wantErr: []string{"PingInterval 1m30s must be shorter than PongWait 1m0s"}},
		{name: "negatives", cfg: Config{SendQueue: -1, WriteWait: -time.Second, RateLimit: -1, TokenWarning: -time.Second},
			wantErr: []string{"SendQueue is negative", "WriteWait is negative", "RateLimit is negative", "TokenWarning is negative"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			eff := tt.cfg.withDefaults()
			if tt.check != nil && !tt.check(eff) {
				t.Fatalf("effective config %+v", eff)
			}
			err := tt.cfg.Validate()
			for _, want := range tt.wantErr {
				if err == nil || !strings.Contains(err.Error(), want) {
					t.Errorf("Validate() = %v, want it to say %q", err, want)
				}
			}
		})
	}
}
