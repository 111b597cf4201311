package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"

	"github.com/rtstack/rtstack/commands"
	"github.com/rtstack/rtstack/gateway/auth"
	"github.com/rtstack/rtstack/projections"
	"github.com/rtstack/rtstack/schemas"
)

// Commands decides and appends chat actions. *commands.Handler satisfies it;
// every method returns only after the broker acknowledged the append (or
// with an error, and then nothing may be acknowledged).
type Commands interface {
	SendMessage(ctx context.Context, c commands.SendMessage) (commands.Result, error)
	EditMessage(ctx context.Context, c commands.EditMessage) (commands.Result, error)
	DeleteMessage(ctx context.Context, c commands.DeleteMessage) (commands.Result, error)
	React(ctx context.Context, c commands.React) (commands.Result, error)
	JoinRoom(ctx context.Context, c commands.JoinRoom) (commands.Result, error)
	LeaveRoom(ctx context.Context, c commands.LeaveRoom) (commands.Result, error)
}

var _ Commands = (*commands.Handler)(nil)

// Boards reads the Redis projections behind the leaderboard and counters
// channels.
type Boards interface {
	Leaderboard(ctx context.Context, n int) ([]projections.ScoreEntry, error)
	Counters(ctx context.Context, room string) (projections.Counters, error)
}

// Presence records who is online in a room, per connection. The gateway
// calls Join after a successful join, Leave after a leave and for every room
// a connection was in when it ends. Errors are logged, never shown to
// clients: presence is not the source of truth.
type Presence interface {
	Join(ctx context.Context, room, user, connID string) error
	Leave(ctx context.Context, room, user, connID string) error
}

// Close codes the gateway uses besides the standard ones (1001 going away on
// Shutdown, 1008 policy violation for abusive clients, 1009 frame over
// MaxFrameBytes).
const (
	// CloseSlowClient closes a connection whose send queue overflowed: it
	// could not keep up and must reconnect with since to recover.
	CloseSlowClient = 4008
)

// Config configures a Server. Zero values take the defaults in the comments.
type Config struct {
	// Brokers are the seed brokers of the log. Required.
	Brokers []string
	// Topic is the event log. Default "chat.events".
	Topic string
	// Codec decodes the log's records. Required.
	Codec *schemas.Codec
	// Commands appends client actions. Required.
	Commands Commands
	// Keys verifies the clients' JWTs. Required.
	Keys *auth.Keys
	// AllowedOrigins lists the browser origins ("https://chat.example.com")
	// allowed to open a WebSocket. Empty allows only the same origin as the
	// request's Host; "*" allows any (rtstack dev). A request without an
	// Origin header (not a browser) is always allowed: it carries a token.
	AllowedOrigins []string
	// MaxFrameBytes is the largest client frame accepted; a bigger one closes
	// the connection with 1009. Default 64 KiB.
	MaxFrameBytes int64
	// SendQueue is how many frames may wait for one connection's writer. A
	// connection whose queue is full is closed with CloseSlowClient; it never
	// slows the others. The live tail hands out at most a quarter of it at
	// a time. Default 4096.
	SendQueue int
	// MaxPackBytes bounds one outgoing WebSocket frame packed from queued
	// objects. Default 256 KiB.
	MaxPackBytes int
	// RateLimit is the sustained number of client frames per second per
	// connection; over it a frame is refused with code rate_limited. Default
	// 50; rate.Inf is unlimited (benchmarks). Burst is the bucket size;
	// default 2×RateLimit.
	RateLimit rate.Limit
	Burst     int
	// AbuseAfter is how many frames in a row may be refused for rate
	// limiting before the connection is closed with 1008. Default 200.
	AbuseAfter int
	// RecoveryWindow is how many records back per partition a join's since
	// may reach; older positions get resync. Default 10000.
	RecoveryWindow int64
	// RecoveryTimeout bounds one recovery read of the log. Default 10s.
	RecoveryTimeout time.Duration
	// MaxRecoveries bounds the recovery reads running at once. Default 8.
	MaxRecoveries int
	// CommandTimeout bounds one client action (append included). Default 15s.
	CommandTimeout time.Duration
	// PingInterval is how often the server pings; PongWait how long it
	// waits for any frame or pong before dropping the connection. Defaults
	// 25s and 60s.
	PingInterval time.Duration
	PongWait     time.Duration
	// WriteWait bounds one frame write. Default 10s.
	WriteWait time.Duration
	// Boards serves the leaderboard and counters channels; nil answers
	// subscribe with error code unavailable.
	Boards Boards
	// LeaderboardSize is how many entries a leaderboard frame carries.
	// Default 10.
	LeaderboardSize int
	// BoardInterval is how often subscribed boards are re-read; a changed
	// board is sent again. Default 1s.
	BoardInterval time.Duration
	// Presence is told about joins and leaves; nil disables presence.
	Presence Presence
	// TopicCheckInterval is how often the tail checks the topic's id, to
	// notice a log that was deleted and created again. Default 5s.
	TopicCheckInterval time.Duration
	// DedupeWindow is how many message ids per room are remembered to drop a
	// MessageSent seen again (a resend that raced its first append, seconds
	// later at most), for up to 2048 rooms. Default 256.
	DedupeWindow int
	// Logger receives the gateway's logs; nil discards them.
	Logger *slog.Logger
	// Registerer receives the gateway's metrics; nil registers nowhere.
	Registerer prometheus.Registerer
}

// Validate reports every missing or invalid field.
func (c Config) Validate() error {
	var errs []error
	if len(c.Brokers) == 0 {
		errs = append(errs, errors.New("gateway: Brokers is required"))
	}
	if c.Codec == nil {
		errs = append(errs, errors.New("gateway: Codec is required"))
	}
	if c.Commands == nil {
		errs = append(errs, errors.New("gateway: Commands is required"))
	}
	if c.Keys == nil {
		errs = append(errs, errors.New("gateway: Keys is required"))
	}
	for name, v := range map[string]int64{
		"MaxFrameBytes": c.MaxFrameBytes, "SendQueue": int64(c.SendQueue), "MaxPackBytes": int64(c.MaxPackBytes),
		"Burst": int64(c.Burst), "AbuseAfter": int64(c.AbuseAfter), "RecoveryWindow": c.RecoveryWindow,
		"MaxRecoveries": int64(c.MaxRecoveries), "LeaderboardSize": int64(c.LeaderboardSize), "DedupeWindow": int64(c.DedupeWindow),
	} {
		if v < 0 {
			errs = append(errs, fmt.Errorf("gateway: %s is negative (%d)", name, v))
		}
	}
	if c.RateLimit < 0 {
		errs = append(errs, fmt.Errorf("gateway: RateLimit is negative (%v)", c.RateLimit))
	}
	if c.PingInterval > 0 && c.PongWait > 0 && c.PingInterval >= c.PongWait {
		errs = append(errs, fmt.Errorf("gateway: PingInterval %v must be shorter than PongWait %v", c.PingInterval, c.PongWait))
	}
	return errors.Join(errs...)
}

func (c *Config) setDefaults() {
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	defDur := func(v *time.Duration, d time.Duration) {
		if *v == 0 {
			*v = d
		}
	}
	if c.Topic == "" {
		c.Topic = "chat.events"
	}
	if c.MaxFrameBytes == 0 {
		c.MaxFrameBytes = 64 << 10
	}
	def(&c.SendQueue, 4096)
	def(&c.MaxPackBytes, 256<<10)
	if c.RateLimit == 0 {
		c.RateLimit = 50
	}
	if c.RateLimit != rate.Inf { // an unlimited bucket needs no size
		def(&c.Burst, int(2*c.RateLimit)+1)
	}
	def(&c.AbuseAfter, 200)
	if c.RecoveryWindow == 0 {
		c.RecoveryWindow = 10000
	}
	defDur(&c.RecoveryTimeout, 10*time.Second)
	def(&c.MaxRecoveries, 8)
	defDur(&c.CommandTimeout, 15*time.Second)
	defDur(&c.PingInterval, 25*time.Second)
	defDur(&c.PongWait, 60*time.Second)
	if c.PingInterval >= c.PongWait {
		c.PingInterval = c.PongWait * 9 / 10
	}
	defDur(&c.WriteWait, 10*time.Second)
	def(&c.LeaderboardSize, 10)
	defDur(&c.BoardInterval, time.Second)
	def(&c.DedupeWindow, 256)
	defDur(&c.TopicCheckInterval, 5*time.Second)
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}
