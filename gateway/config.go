package gateway

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"

	"github.com/rtstack/rtstack/commands"
	"github.com/rtstack/rtstack/gateway/auth"
	"github.com/rtstack/rtstack/infra/kafka"
	"github.com/rtstack/rtstack/projections/view"
	"github.com/rtstack/rtstack/schemas"
)

// Commands decides and appends chat actions. *commands.Handler satisfies it.
// Submit issues a room action's append and calls ready once its outcome is
// known (see commands.Handler.Submit): the gateway keeps many in flight per
// connection, submitted in order per room. JoinRoom and LeaveRoom return
// only after the broker acknowledged the append (or with an error, and then
// nothing may be acknowledged). SubmitAll submits a run of one room's
// actions as Submit in turn would, deciding them together.
type Commands interface {
	Submit(ctx context.Context, a commands.Action, ready func()) *commands.Pending
	SubmitAll(subs []commands.Submission) []*commands.Pending
	JoinRoom(ctx context.Context, c commands.JoinRoom) (commands.Result, error)
	LeaveRoom(ctx context.Context, c commands.LeaveRoom) (commands.Result, error)
}

var _ Commands = (*commands.Handler)(nil)

// Boards reads the Redis projections behind the leaderboard and counters
// channels.
type Boards interface {
	Leaderboard(ctx context.Context, n int) ([]view.ScoreEntry, error)
	Counters(ctx context.Context, room string) (view.Counters, error)
}

// BoardWatcher reports changes of the boards behind the leaderboard and
// counters channels: WatchBoards calls changed (which must not block) for
// each change committed to the projection, and with All whenever notices
// may have been missed, until ctx ends. *redis.Projection satisfies it over
// Redis pub/sub.
type BoardWatcher interface {
	WatchBoards(ctx context.Context, changed func(view.BoardChange)) error
}

// Presence records who is online in a room, per connection. The gateway
// calls Join after a successful join, Leave after a leave and for every room
// a connection was in when it ends. Errors are logged, never shown to
// clients: presence is not the source of truth.
type Presence interface {
	Join(ctx context.Context, room, user, connID string) error
	Leave(ctx context.Context, room, user, connID string) error
}

// Signals carries ephemeral room frames (typing) to every gateway: Signal
// publishes frame for room, and each gateway's receiver hands it to its
// Server.BroadcastRoom. *presence.Tracker satisfies it over Redis pub/sub.
// Delivery is at most once; nothing is stored.
type Signals interface {
	Signal(ctx context.Context, room string, frame []byte) error
}

// Close codes the gateway uses besides the standard ones (1001 going away on
// Shutdown, 1008 policy violation for abusive clients, 1009 frame over
// MaxFrameBytes).
const (
	// CloseSlowClient closes a connection whose send queue overflowed: it
	// could not keep up and must reconnect with since to recover.
	CloseSlowClient = 4008
	// CloseTokenExpired closes a connection whose token reached its exp
	// without a refresh; the client reconnects with a new token.
	CloseTokenExpired = 4001
)

// Defaults of Config, taken by its zero fields.
const (
	DefaultTopic              = "chat.events"
	DefaultMaxFrameBytes      = 64 << 10
	DefaultSendQueue          = 4096
	DefaultMaxPackBytes       = 256 << 10
	DefaultSendQueueBytes     = 1 << 20
	DefaultSlowClientWait     = 5 * time.Second
	DefaultRateLimit          = 50  // frames per second; Burst defaults to 2×RateLimit
	DefaultUserRateLimit      = 100 // frames per second across a user's connections; UserBurst 2×
	DefaultUserConnLimit      = 32
	DefaultMaxRooms           = 100
	DefaultMaxSubscriptions   = 100
	DefaultRecoveryFetchBytes = 64 << 10
	DefaultAbuseAfter         = 200
	DefaultRecoveryWindow     = 10000
	DefaultRecoveryTimeout    = 10 * time.Second
	DefaultMaxRecoveries      = 8
	DefaultCommandTimeout     = 15 * time.Second
	DefaultMaxInflight        = 64
	DefaultPingInterval       = 25 * time.Second
	DefaultPongWait           = 60 * time.Second
	DefaultWriteWait          = 10 * time.Second
	DefaultLeaderboardSize    = 10
	DefaultBoardInterval      = 250 * time.Millisecond
	DefaultTopicCheckInterval = 5 * time.Second
	DefaultDedupeWindow       = 256
	DefaultTypingInterval     = 2 * time.Second
	DefaultTokenWarning       = 30 * time.Second
)

// Config configures a Server. Zero values take the defaults in the comments
// (the Default* constants).
type Config struct {
	// Kafka reaches the log's cluster: seed brokers (required), TLS, SASL,
	// compression. A nil Kafka.Logger takes Logger.
	Kafka kafka.ClientConfig
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
	// SendQueueBytes bounds the bytes of the frames waiting for or being
	// written by one connection's writer; the live tail closes a connection
	// over it with CloseSlowClient, and a recovery waits under it for the
	// writer to drain (so a recovery holds at most this much per
	// connection). It also bounds the live records buffered during a
	// recovery (over it: resync overflow). Default 1 MiB.
	SendQueueBytes int
	// SlowClientWait is how long a recovery or reply may wait for a full
	// send queue to drain at all before the connection is closed with
	// CloseSlowClient: a client that stopped reading. Default 5s.
	SlowClientWait time.Duration
	// MaxPackBytes bounds one outgoing WebSocket frame packed from queued
	// objects. Default 256 KiB.
	MaxPackBytes int
	// RateLimit is the sustained number of client frames per second per
	// connection; over it a frame is refused with code rate_limited. Default
	// 50; rate.Inf: unlimited. Burst is the bucket size; default 2×RateLimit
	// (100 at the default rate).
	RateLimit rate.Limit
	Burst     int
	// UserRateLimit is the same across all of one user's connections to
	// this gateway, refused with code user_rate_limited. Default 100;
	// rate.Inf: unlimited. UserBurst defaults to 2×UserRateLimit.
	UserRateLimit rate.Limit
	UserBurst     int
	// UserConnLimit bounds one user's WebSocket connections to this
	// gateway; the next is refused with HTTP 429 too_many_connections
	// before the upgrade. Default 32.
	UserConnLimit int
	// MaxRooms bounds the rooms one connection has joined (too_many_rooms);
	// MaxSubscriptions its board channels (too_many_subscriptions). Default
	// 100 each.
	MaxRooms         int
	MaxSubscriptions int
	// AbuseAfter is how many frames in a row may be refused for rate
	// limiting before the connection is closed with 1008. Default 200.
	AbuseAfter int
	// RecoveryWindow is how many records back per partition a join's since
	// may reach; older positions get resync. Default 10000.
	RecoveryWindow int64
	// RecoveryTimeout bounds waiting for a recovery slot and each read of
	// the log during a recovery (a log that answers nothing for that long
	// fails the join with unavailable); a slow client's recovery may take
	// longer in all. Default 10s.
	RecoveryTimeout time.Duration
	// MaxRecoveries bounds the recovery reads running at once. Default 8.
	MaxRecoveries int
	// RecoveryFetchBytes bounds one read of the log by a recovery, in the
	// log's (compressed) bytes; a read returns at least one record batch.
	// It is small because a batch of chat text decompresses to up to the
	// producer's batch size (1 MB): a recovery holds SendQueueBytes of
	// frames plus two reads (one being replayed, one fetched ahead), each
	// about one or two batches once decompressed. Default 64 KiB.
	RecoveryFetchBytes int
	// CommandTimeout bounds one client action (append included). Default 15s.
	CommandTimeout time.Duration
	// MaxInflight bounds the room actions (send, edit, delete, react) one
	// connection may have read and not yet answered; they are appended
	// without waiting for each other (in order per room). Over it the
	// connection's next frame is read only once one is answered:
	// backpressure, no error. Default 64.
	MaxInflight int
	// PingInterval is how often the server pings; PongWait how long it
	// waits for any frame or pong before dropping the connection. Defaults
	// 25s and 60s; an unset PingInterval is at most 9/10 of PongWait, and a
	// PingInterval set at or over PongWait is refused by Validate.
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
	// BoardChanges tells which boards the projection changed. With it, a
	// board is re-read only after a change notice, once per BoardInterval
	// however many subscribers it has; nil re-reads every subscribed board
	// each BoardInterval.
	BoardChanges BoardWatcher
	// BoardInterval coalesces board pushes: a changed board is re-read and
	// sent at most once per interval. Default 250ms (4 pushes/s per
	// channel at most).
	BoardInterval time.Duration
	// Presence is told about joins and leaves; nil disables presence.
	Presence Presence
	// Signals relays typing frames to the other gateways; nil delivers
	// them to this gateway's connections only.
	Signals Signals
	// TypingInterval is the least time between two typing frames of one
	// connection in one room; one sooner is refused with rate_limited.
	// Default 2s.
	TypingInterval time.Duration
	// TopicCheckInterval is how often the tail checks the topic's id, to
	// notice a log that was deleted and created again. Default 5s.
	TopicCheckInterval time.Duration
	// DedupeWindow is how many message ids per room are remembered to drop a
	// MessageSent seen again (a resend that raced its first append, seconds
	// later at most), for up to 2048 rooms. Default 256.
	DedupeWindow int
	// TokenWarning is how long before its token's exp a connection is sent
	// token_expiring (at once when less is left); at exp it is closed with
	// CloseTokenExpired unless a refresh came. Default 30s.
	TokenWarning time.Duration
	// Logger receives the gateway's logs; nil discards them.
	Logger *slog.Logger
	// Registerer receives the gateway's metrics; nil registers nowhere.
	Registerer prometheus.Registerer
}

// Validate reports every missing or invalid field of c once its defaults
// are applied, joined: it checks the values New will use.
func (c Config) Validate() error {
	c = c.withDefaults()
	var errs []error
	if len(c.Kafka.Brokers) == 0 {
		errs = append(errs, errors.New("gateway: Kafka.Brokers is required"))
	} else if err := c.Kafka.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("gateway: %w", err))
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
	for _, f := range []struct {
		name string
		v    int64
	}{
		{"MaxFrameBytes", c.MaxFrameBytes}, {"SendQueue", int64(c.SendQueue)}, {"MaxPackBytes", int64(c.MaxPackBytes)},
		{"SendQueueBytes", int64(c.SendQueueBytes)}, {"SlowClientWait", int64(c.SlowClientWait)}, {"UserBurst", int64(c.UserBurst)},
		{"UserConnLimit", int64(c.UserConnLimit)}, {"MaxRooms", int64(c.MaxRooms)}, {"MaxSubscriptions", int64(c.MaxSubscriptions)},
		{"RecoveryFetchBytes", int64(c.RecoveryFetchBytes)},
		{"Burst", int64(c.Burst)}, {"AbuseAfter", int64(c.AbuseAfter)}, {"RecoveryWindow", c.RecoveryWindow},
		{"MaxRecoveries", int64(c.MaxRecoveries)}, {"LeaderboardSize", int64(c.LeaderboardSize)}, {"DedupeWindow", int64(c.DedupeWindow)},
		{"RecoveryTimeout", int64(c.RecoveryTimeout)}, {"CommandTimeout", int64(c.CommandTimeout)}, {"MaxInflight", int64(c.MaxInflight)}, {"PingInterval", int64(c.PingInterval)},
		{"PongWait", int64(c.PongWait)}, {"WriteWait", int64(c.WriteWait)}, {"BoardInterval", int64(c.BoardInterval)},
		{"TopicCheckInterval", int64(c.TopicCheckInterval)}, {"TokenWarning", int64(c.TokenWarning)},
	} {
		if f.v < 0 {
			errs = append(errs, fmt.Errorf("gateway: %s is negative (%d)", f.name, f.v))
		}
	}
	if c.RateLimit < 0 {
		errs = append(errs, fmt.Errorf("gateway: RateLimit is negative (%v)", c.RateLimit))
	}
	if c.UserRateLimit < 0 {
		errs = append(errs, fmt.Errorf("gateway: UserRateLimit is negative (%v)", c.UserRateLimit))
	}
	if c.PingInterval >= c.PongWait {
		errs = append(errs, fmt.Errorf("gateway: PingInterval %v must be shorter than PongWait %v", c.PingInterval, c.PongWait))
	}
	return errors.Join(errs...)
}

// withDefaults returns c with every zero field set to its default.
func (c Config) withDefaults() Config {
	c.Topic = cmp.Or(c.Topic, DefaultTopic)
	c.MaxFrameBytes = cmp.Or(c.MaxFrameBytes, DefaultMaxFrameBytes)
	c.SendQueue = cmp.Or(c.SendQueue, DefaultSendQueue)
	c.MaxPackBytes = cmp.Or(c.MaxPackBytes, DefaultMaxPackBytes)
	c.SendQueueBytes = cmp.Or(c.SendQueueBytes, DefaultSendQueueBytes)
	c.SlowClientWait = cmp.Or(c.SlowClientWait, DefaultSlowClientWait)
	c.RateLimit = cmp.Or(c.RateLimit, DefaultRateLimit)
	c.Burst = cmp.Or(c.Burst, burstOf(c.RateLimit))
	c.UserRateLimit = cmp.Or(c.UserRateLimit, DefaultUserRateLimit)
	c.UserBurst = cmp.Or(c.UserBurst, burstOf(c.UserRateLimit))
	c.UserConnLimit = cmp.Or(c.UserConnLimit, DefaultUserConnLimit)
	c.MaxRooms = cmp.Or(c.MaxRooms, DefaultMaxRooms)
	c.MaxSubscriptions = cmp.Or(c.MaxSubscriptions, DefaultMaxSubscriptions)
	c.RecoveryFetchBytes = cmp.Or(c.RecoveryFetchBytes, DefaultRecoveryFetchBytes)
	c.AbuseAfter = cmp.Or(c.AbuseAfter, DefaultAbuseAfter)
	c.RecoveryWindow = cmp.Or(c.RecoveryWindow, DefaultRecoveryWindow)
	c.RecoveryTimeout = cmp.Or(c.RecoveryTimeout, DefaultRecoveryTimeout)
	c.MaxRecoveries = cmp.Or(c.MaxRecoveries, DefaultMaxRecoveries)
	c.CommandTimeout = cmp.Or(c.CommandTimeout, DefaultCommandTimeout)
	c.MaxInflight = cmp.Or(c.MaxInflight, DefaultMaxInflight)
	c.PongWait = cmp.Or(c.PongWait, DefaultPongWait)
	if c.PingInterval == 0 {
		// Unset: the default, or just under a PongWait set shorter than it.
		c.PingInterval = min(DefaultPingInterval, c.PongWait*9/10)
	}
	c.WriteWait = cmp.Or(c.WriteWait, DefaultWriteWait)
	c.LeaderboardSize = cmp.Or(c.LeaderboardSize, DefaultLeaderboardSize)
	c.BoardInterval = cmp.Or(c.BoardInterval, DefaultBoardInterval)
	c.DedupeWindow = cmp.Or(c.DedupeWindow, DefaultDedupeWindow)
	c.TopicCheckInterval = cmp.Or(c.TopicCheckInterval, DefaultTopicCheckInterval)
	c.TypingInterval = cmp.Or(c.TypingInterval, DefaultTypingInterval)
	c.TokenWarning = cmp.Or(c.TokenWarning, DefaultTokenWarning)
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	c.Kafka = c.Kafka.OrLogger(c.Logger)
	return c
}

// burstOf is the default bucket of a rate: twice the rate, at least one
// frame; an unlimited rate never consults it.
func burstOf(r rate.Limit) int {
	if r == rate.Inf {
		return 1
	}
	return max(int(2*r), 1)
}
