package presence

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
)

// Defaults of Config.
const (
	DefaultTTL       = 15 * time.Second
	DefaultHeartbeat = 5 * time.Second
	DefaultPrefix    = "rtstack:"
)

// Config configures a Tracker. Redis and GatewayID are required.
type Config struct {
	// Redis is the shared Redis; the caller closes it after Run returned.
	Redis *redis.Client
	// Prefix starts every key and channel name; default "rtstack:". All
	// gateways of one deployment must use the same prefix.
	Prefix string
	// TTL is how long a connection counts as online after its last
	// heartbeat; default 15s. A crashed gateway's users vanish after it.
	TTL time.Duration
	// Heartbeat is how often this gateway refreshes its connections and
	// sweeps expired ones; default 5s; must be below TTL.
	Heartbeat time.Duration
	// GatewayID names this gateway in logs; required.
	GatewayID string
	// Logger receives the logs; nil discards them (the binary injects its own).
	Logger *slog.Logger
	// Registerer receives the tracker's metrics (rtstack_presence_*); nil:
	// none.
	Registerer prometheus.Registerer
}

// Validate reports every problem of c once its defaults are applied,
// joined.
func (c Config) Validate() error {
	c = c.withDefaults()
	var errs []error
	if c.Redis == nil {
		errs = append(errs, errors.New("presence: Config.Redis is required"))
	}
	if c.GatewayID == "" {
		errs = append(errs, errors.New("presence: Config.GatewayID is required"))
	}
	if c.TTL < 0 || c.Heartbeat < 0 {
		errs = append(errs, errors.New("presence: TTL and Heartbeat must not be negative"))
	}
	if c.Heartbeat >= c.TTL {
		errs = append(errs, fmt.Errorf("presence: Heartbeat %v must be below TTL %v", c.Heartbeat, c.TTL))
	}
	return errors.Join(errs...)
}

// withDefaults returns c with every zero field set to its default.
func (c Config) withDefaults() Config {
	c.Prefix = cmp.Or(c.Prefix, DefaultPrefix)
	c.TTL = cmp.Or(c.TTL, DefaultTTL)
	c.Heartbeat = cmp.Or(c.Heartbeat, DefaultHeartbeat)
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// conn is one connection in one room held by this gateway.
type conn struct{ room, user, id string }

// Tracker is one gateway's view of the shared presence. Join and Leave are
// safe for concurrent use; Run is called once.
type Tracker struct {
	cfg     Config
	rdb     *redis.Client
	log     *slog.Logger
	events  string // channel of room transitions
	notify  string // channel of user notifications
	signals string // channel of ephemeral room frames (typing)
	expiry  string // key of the expiry index
	metrics *metrics
	running sync.Mutex
	mu      sync.Mutex              // guards local, rooms, users, welcome
	local   map[conn]struct{}       // connections this gateway holds
	rooms   map[string]int          // room → local connections in it
	users   map[string]int          // user → local connections of the user
	welcome map[welcomeKey]struct{} // joins that announced nothing, for Welcome
	wake    chan struct{}           // signals Run that welcome has entries
}

type welcomeKey struct{ room, user string }

// New returns a Tracker for cfg.
func New(cfg Config) (*Tracker, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	p := cfg.Prefix + "presence:"
	t := &Tracker{
		cfg:     cfg,
		rdb:     cfg.Redis,
		log:     cfg.Logger.With("gateway_id", cfg.GatewayID),
		events:  p + "events",
		notify:  p + "notify",
		signals: p + "signals",
		expiry:  p + "expiry",
		local:   map[conn]struct{}{},
		rooms:   map[string]int{},
		users:   map[string]int{},
		welcome: map[welcomeKey]struct{}{},
		wake:    make(chan struct{}, 1),
	}
	m, err := newMetrics(cfg.Registerer, func() float64 {
		t.mu.Lock()
		defer t.mu.Unlock()
		return float64(len(t.local))
	})
	if err != nil {
		return nil, err
	}
	t.metrics = m
	return t, nil
}

// lp writes s length-prefixed, so keys and members built from several
// user-chosen strings are unambiguous.
func lp(s string) string { return strconv.Itoa(len(s)) + ":" + s }

func (t *Tracker) roomKey(room string) string { return t.cfg.Prefix + "presence:room:" + room }
func (t *Tracker) userKey(user string) string { return t.cfg.Prefix + "presence:user:" + user }
func (t *Tracker) connsKey(room, user string) string {
	return t.cfg.Prefix + "presence:conns:" + lp(room) + lp(user)
}

func (t *Tracker) keysArgs(c conn, second any, extra ...any) ([]string, []any) {
	keys := []string{t.connsKey(c.room, c.user), t.roomKey(c.room), t.userKey(c.user), t.expiry}
	args := []any{c.id, second, c.user, c.room, lp(c.room), lp(c.room) + lp(c.user), t.events}
	return keys, append(args, extra...)
}

// parseExpiry splits an expiry-index member back into its connection.
func parseExpiry(m string) (conn, bool) {
	var parts [2]string
	for i := range parts {
		n, rest, ok := strings.Cut(m, ":")
		if !ok {
			return conn{}, false
		}
		l, err := strconv.Atoi(n)
		if err != nil || l < 0 || l > len(rest) {
			return conn{}, false
		}
		parts[i], m = rest[:l], rest[l:]
	}
	return conn{room: parts[0], user: parts[1], id: m}, true
}

// Join marks connection connID of user online in room. If the user was not
// online there (on any gateway) the transition is announced to every
// Tracker's Run. On error the connection stays tracked locally and the next
// heartbeat registers it again; call Leave when the connection goes.
func (t *Tracker) Join(ctx context.Context, room, user, connID string) error {
	c := conn{room, user, connID}
	t.mu.Lock()
	if _, ok := t.local[c]; !ok {
		t.local[c] = struct{}{}
		t.rooms[room]++
		t.users[user]++
	}
	t.mu.Unlock()
	keys, args := t.keysArgs(c, t.cfg.TTL.Milliseconds())
	announced, err := joinScript.Run(ctx, t.rdb, keys, args...).Int()
	if err != nil {
		t.metrics.errors.WithLabelValues("join").Inc()
		return fmt.Errorf("presence join %s: %w", room, err)
	}
	if announced == 1 {
		t.metrics.announced.WithLabelValues("join").Inc()
	} else {
		t.mu.Lock()
		t.welcome[welcomeKey{room, user}] = struct{}{}
		t.mu.Unlock()
		select {
		case t.wake <- struct{}{}:
		default:
		}
	}
	return nil
}

// Leave marks connection connID of user gone from room; the user's last
// connection there announces the transition. Leaving an unknown connection
// is not an error. If Redis cannot be reached the entry expires after TTL.
func (t *Tracker) Leave(ctx context.Context, room, user, connID string) error {
	c := conn{room, user, connID}
	t.mu.Lock()
	if _, ok := t.local[c]; ok {
		delete(t.local, c)
		if t.rooms[room]--; t.rooms[room] == 0 {
			delete(t.rooms, room)
		}
		if t.users[user]--; t.users[user] == 0 {
			delete(t.users, user)
		}
	}
	t.mu.Unlock()
	keys, args := t.keysArgs(c, "0")
	announced, err := leaveScript.Run(ctx, t.rdb, keys, args...).Int()
	if err != nil {
		t.metrics.errors.WithLabelValues("leave").Inc()
		return fmt.Errorf("presence leave %s: %w", room, err)
	}
	if announced == 1 {
		t.metrics.announced.WithLabelValues("leave").Inc()
	}
	return nil
}

// Online returns the distinct users online in room on any gateway, sorted.
func (t *Tracker) Online(ctx context.Context, room string) ([]string, error) {
	users, err := onlineScript.Run(ctx, t.rdb, []string{t.roomKey(room)}).StringSlice()
	if err != nil {
		return nil, fmt.Errorf("presence online %s: %w", room, err)
	}
	slices.Sort(users)
	return users, nil
}

// UserOnline reports whether user has a live connection in any room on any
// gateway.
func (t *Tracker) UserOnline(ctx context.Context, user string) (bool, error) {
	n, err := countLiveScript.Run(ctx, t.rdb, []string{t.userKey(user)}).Int64()
	if err != nil {
		return false, fmt.Errorf("presence user online: %w", err)
	}
	return n > 0, nil
}

// Notify publishes frame for user to every gateway; the Runs holding a
// connection of user pass it to their Deliver callback. Delivery is at most
// once and only to users online at that instant: check UserOnline first and
// use another channel for offline users.
func (t *Tracker) Notify(ctx context.Context, user string, frame []byte) error {
	b, err := json.Marshal(notification{User: user, Frame: frame})
	if err != nil {
		return fmt.Errorf("encode notification: %w", err)
	}
	if err := t.rdb.Publish(ctx, t.notify, b).Err(); err != nil {
		t.metrics.errors.WithLabelValues("notify").Inc()
		return fmt.Errorf("publish notification: %w", err)
	}
	return nil
}

// Signal publishes frame, one JSON object for the clients in room (a typing
// hint), to every gateway; the Runs holding a connection in room pass it to
// their Relay callback. At most once, never stored.
func (t *Tracker) Signal(ctx context.Context, room string, frame []byte) error {
	b, err := json.Marshal(signal{Room: room, Frame: frame})
	if err != nil {
		return fmt.Errorf("encode signal: %w", err)
	}
	if err := t.rdb.Publish(ctx, t.signals, b).Err(); err != nil {
		t.metrics.errors.WithLabelValues("signal").Inc()
		return fmt.Errorf("publish signal: %w", err)
	}
	return nil
}

type signal struct {
	Room  string          `json:"room"`
	Frame json.RawMessage `json:"frame"`
}

type notification struct {
	User  string `json:"user"`
	Frame []byte `json:"frame"`
}

type transition struct {
	Room  string          `json:"room"`
	Users json.RawMessage `json:"users"` // Lua's cjson writes an empty list as {}
}

// RunOption adds to what Run does.
type RunOption func(*runOptions)

type runOptions struct {
	deliver    func(user string, frame []byte) bool
	subscribed func()
	welcome    func(room, user string, users []string)
	relay      func(room string, frame []byte)
}

// Relay makes Run pass each Signal for a room in which this gateway holds
// a connection to relay (typically the gateway's BroadcastRoom). relay runs
// on Run's goroutine: it must not block.
func Relay(relay func(room string, frame []byte)) RunOption {
	return func(o *runOptions) { o.relay = relay }
}

// Welcome makes Run call f after a Join on this gateway that announced
// nothing (the user was already online in the room: a 2nd tab, or a tab on
// another gateway), with the room's current sorted list, so the new
// connection can be sent the list the others got through onChange. Wire it
// to a presence frame sent with the gateway's DeliverToUser: only the user's
// own connections get it, never the whole room. f runs on Run's goroutine:
// it must not block.
func Welcome(f func(room, user string, users []string)) RunOption {
	return func(o *runOptions) { o.welcome = f }
}

// Subscribed makes Run call f each time its subscription to the presence
// channels is (re)established: from then on transitions and notifications
// reach it (a readiness signal; tests use it to avoid sleeping).
func Subscribed(f func()) RunOption {
	return func(o *runOptions) { o.subscribed = f }
}

// Deliver makes Run pass each notification for a user with a connection on
// this gateway to deliver (typically the gateway's DeliverToUser). deliver
// runs on Run's goroutine: it must not block.
func Deliver(deliver func(user string, frame []byte) bool) RunOption {
	return func(o *runOptions) { o.deliver = deliver }
}

// Run heartbeats this gateway's connections every Heartbeat, sweeps
// connections whose deadline passed (any gateway's, so a crashed gateway's
// users go after TTL), and listens for transitions and notifications until
// ctx ends; it then returns nil. onChange is called with a room's full
// sorted user list after every 0↔1 transition of a user in it, for rooms
// where this gateway holds a connection, in the order Redis published them,
// and once per such room after (re)subscribing, since transitions published
// while disconnected are lost. A 2nd tab adds no call: the Welcome option
// gives the newcomer the current list. onChange runs on
// Run's goroutine: it must not block. Run must not be called twice at once.
func (t *Tracker) Run(ctx context.Context, onChange func(room string, users []string), opts ...RunOption) error {
	if !t.running.TryLock() {
		return errors.New("presence: Run already running")
	}
	defer t.running.Unlock()
	var o runOptions
	for _, opt := range opts {
		opt(&o)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // owned by Run: cancelled and awaited on return
		defer wg.Done()
		t.beat(ctx)
	}()
	defer wg.Wait()

	// notify last: its confirmation means every channel is live.
	ps := t.rdb.Subscribe(ctx, t.events, t.signals, t.notify)
	defer func() { _ = ps.Close() }()
	ch := ps.ChannelWithSubscriptions(redis.WithChannelSize(1024))
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.wake:
			t.welcomeAll(ctx, o.welcome)
		case m, ok := <-ch:
			if !ok {
				return nil
			}
			switch m := m.(type) {
			case *redis.Subscription:
				// Redis confirms the channels in the order subscribed:
				// after the last one, all are live.
				if m.Kind == "subscribe" && m.Channel == t.notify {
					t.resync(ctx, onChange)
					if o.subscribed != nil {
						o.subscribed()
					}
				}
			case *redis.Message:
				t.handle(m, onChange, &o)
			}
		}
	}
}

func (t *Tracker) handle(m *redis.Message, onChange func(string, []string), o *runOptions) {
	switch m.Channel {
	case t.events:
		var tr transition
		if err := json.Unmarshal([]byte(m.Payload), &tr); err != nil {
			t.log.Warn("presence: bad transition message", "err", err)
			return
		}
		var users []string
		if len(tr.Users) > 0 && tr.Users[0] == '[' {
			if err := json.Unmarshal(tr.Users, &users); err != nil {
				t.log.Warn("presence: bad transition users", "room", tr.Room, "err", err)
				return
			}
		}
		if users == nil {
			users = []string{}
		}
		slices.Sort(users)
		t.mu.Lock()
		held := t.rooms[tr.Room] > 0
		t.mu.Unlock()
		if held && onChange != nil {
			onChange(tr.Room, users)
		}
	case t.signals:
		t.relay(m, o.relay)
	case t.notify:
		deliver := o.deliver
		if deliver == nil {
			return
		}
		var n notification
		if err := json.Unmarshal([]byte(m.Payload), &n); err != nil {
			t.log.Warn("presence: bad notification message", "err", err)
			return
		}
		t.mu.Lock()
		held := t.users[n.User] > 0
		t.mu.Unlock()
		if held {
			deliver(n.User, n.Frame)
		}
	}
}

func (t *Tracker) relay(m *redis.Message, relay func(string, []byte)) {
	if relay == nil {
		return
	}
	var sg signal
	if err := json.Unmarshal([]byte(m.Payload), &sg); err != nil {
		t.log.Warn("presence: bad signal message", "err", err)
		return
	}
	t.mu.Lock()
	held := t.rooms[sg.Room] > 0
	t.mu.Unlock()
	if held {
		relay(sg.Room, sg.Frame)
	}
}

// welcomeAll calls f for every pending welcome whose user is still held
// here.
func (t *Tracker) welcomeAll(ctx context.Context, f func(room, user string, users []string)) {
	t.mu.Lock()
	pending := make([]welcomeKey, 0, len(t.welcome))
	for k := range t.welcome {
		if t.users[k.user] > 0 {
			pending = append(pending, k)
		}
	}
	clear(t.welcome)
	t.mu.Unlock()
	if f == nil {
		return
	}
	for _, k := range pending {
		users, err := t.Online(ctx, k.room)
		if err != nil {
			t.log.Warn("presence: welcome", "room", k.room, "err", err)
			continue
		}
		f(k.room, k.user, users)
	}
}

// resync calls onChange with the current list of every room this gateway
// holds connections in.
func (t *Tracker) resync(ctx context.Context, onChange func(string, []string)) {
	if onChange == nil {
		return
	}
	t.mu.Lock()
	rooms := make([]string, 0, len(t.rooms))
	for r := range t.rooms {
		rooms = append(rooms, r)
	}
	t.mu.Unlock()
	slices.Sort(rooms)
	for _, r := range rooms {
		users, err := t.Online(ctx, r)
		if err != nil {
			t.log.Warn("presence: resync", "room", r, "err", err)
			continue
		}
		onChange(r, users)
	}
}

func (t *Tracker) beat(ctx context.Context) {
	tick := time.NewTicker(t.cfg.Heartbeat)
	defer tick.Stop()
	for {
		if err := t.refresh(ctx); err != nil && ctx.Err() == nil {
			t.metrics.errors.WithLabelValues("heartbeat").Inc()
			t.log.Warn("presence: heartbeat", "err", err)
		}
		if err := t.sweep(ctx); err != nil && ctx.Err() == nil {
			t.metrics.errors.WithLabelValues("sweep").Inc()
			t.log.Warn("presence: sweep", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

const batch = 256

// refresh extends the deadline of every local connection. One that is gone
// from Redis (swept while this gateway could not reach Redis for longer than
// TTL, or Redis lost its data) is registered again, and announced, if this
// gateway still holds it.
func (t *Tracker) refresh(ctx context.Context) error {
	t.mu.Lock()
	conns := make([]conn, 0, len(t.local))
	for c := range t.local {
		conns = append(conns, c)
	}
	t.mu.Unlock()
	if len(conns) == 0 {
		return nil
	}
	if err := joinScript.Load(ctx, t.rdb).Err(); err != nil {
		return fmt.Errorf("load script: %w", err)
	}
	ttl := t.cfg.TTL.Milliseconds()
	var gone []conn
	for chunk := range slices.Chunk(conns, batch) {
		cmds, err := t.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			for _, c := range chunk {
				keys, args := t.keysArgs(c, ttl, "refresh")
				joinScript.EvalSha(ctx, p, keys, args...)
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("refresh %d connections: %w", len(chunk), err)
		}
		for i, cmd := range cmds {
			if n, _ := cmd.(*redis.Cmd).Int(); n == 2 {
				gone = append(gone, chunk[i])
			}
		}
	}
	for _, c := range gone {
		t.mu.Lock()
		_, held := t.local[c]
		t.mu.Unlock()
		if !held { // left meanwhile
			continue
		}
		keys, args := t.keysArgs(c, ttl)
		if err := joinScript.Run(ctx, t.rdb, keys, args...).Err(); err != nil {
			return fmt.Errorf("register %s again: %w", c.room, err)
		}
	}
	return nil
}

// sweep removes every connection whose deadline passed. Several gateways
// may sweep at once: the leave script removes a connection once and only if
// it is still expired.
func (t *Tracker) sweep(ctx context.Context) error {
	for range 100 { // bounded: the rest waits for the next sweep
		dead, err := expiredScript.Run(ctx, t.rdb, []string{t.expiry}, batch).StringSlice()
		if err != nil {
			return fmt.Errorf("list expired: %w", err)
		}
		for _, m := range dead {
			c, ok := parseExpiry(m)
			if !ok {
				t.rdb.ZRem(ctx, t.expiry, m)
				continue
			}
			keys, args := t.keysArgs(c, "1")
			announced, err := leaveScript.Run(ctx, t.rdb, keys, args...).Int()
			if err != nil {
				return fmt.Errorf("sweep %s: %w", c.room, err)
			}
			t.metrics.swept.Inc()
			if announced == 1 {
				t.metrics.announced.WithLabelValues("sweep").Inc()
			}
		}
		if len(dead) < batch {
			return nil
		}
	}
	return nil
}
