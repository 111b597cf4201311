package gateway

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"github.com/twmb/franz-go/pkg/kgo"
	"golang.org/x/time/rate"

	"github.com/rtstack/rtstack/gateway/clienterr"
	"github.com/rtstack/rtstack/infra/kafka"
	"github.com/rtstack/rtstack/internal/retry"
	"github.com/rtstack/rtstack/projections/view"
)

// readBufferSize is each connection's read buffer, held for its life.
const readBufferSize = 1024

// Server is the WebSocket gateway. ServeHTTP serves GET /ws; Run tails the
// log and fans it out; Shutdown ends every connection. Safe for concurrent
// use.
type Server struct {
	cfg      Config
	log      *slog.Logger
	m        *metrics
	up       websocket.Upgrader
	hub      *hub
	recovery chan struct{} // semaphore bounding concurrent recovery reads
	ready    chan struct{} // closed once the tail knows the log's shape and position
	// admin is Run's metadata client, set before ready is closed and shared
	// by the connections' since checks instead of a client per check.
	admin atomic.Pointer[kgo.Client]
	// place decodes records and checks the placement rule over the log the
	// tail reads; set by Run before ready is closed, replaced when the log
	// is recreated.
	place atomic.Pointer[kafka.Placement]

	mu       sync.Mutex // guards closing, conns, byUser, users, and Adds to inflight
	closing  bool
	conns    map[*conn]struct{}
	byUser   map[string]map[*conn]struct{}
	users    map[string]*userShare
	inflight sync.WaitGroup // client actions being appended
	connWG   sync.WaitGroup // ServeHTTP calls holding a connection

	readyOnce sync.Once
}

// New returns a Server for cfg. It does no I/O: Run connects to the log.
func New(cfg Config) (*Server, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, err
	}
	s := &Server{
		cfg:      cfg,
		log:      cfg.Logger.With("component", "gateway"),
		m:        m,
		hub:      newHub(cfg.DedupeWindow, cfg.SendQueue, cfg.SendQueueBytes),
		recovery: make(chan struct{}, cfg.MaxRecoveries),
		ready:    make(chan struct{}),
		conns:    map[*conn]struct{}{},
		byUser:   map[string]map[*conn]struct{}{},
		users:    map[string]*userShare{},
	}
	s.up = websocket.Upgrader{
		// Client frames are small actions: a small read buffer per
		// connection (a bigger frame is read through it in pieces).
		ReadBufferSize: readBufferSize,
		// Pooled write buffers, held only while a frame is written: idle
		// connections hold none, and a big packed frame takes few writes.
		WriteBufferSize: 16384,
		WriteBufferPool: &sync.Pool{},
		CheckOrigin:     s.checkOrigin,
	}
	return s, nil
}

// checkOrigin applies AllowedOrigins. Requests without an Origin header are
// not from a browser and carry their own token.
func (s *Server) checkOrigin(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	if len(s.cfg.AllowedOrigins) == 0 {
		u, err := url.Parse(origin)
		return err == nil && strings.EqualFold(u.Host, r.Host)
	}
	for _, o := range s.cfg.AllowedOrigins {
		if o == "*" || strings.EqualFold(strings.TrimSuffix(o, "/"), origin) {
			return true
		}
	}
	return false
}

// ServeHTTP serves GET /ws: the token is verified before the upgrade
// (HTTP 401 when missing, bad or expired), the Origin against
// AllowedOrigins (403), the user's connections against UserConnLimit (429).
// The server's read and write deadlines are lifted for the upgraded
// connection. It returns once the connection is upgraded; the connection
// lives on in a goroutine of its own until it ends (Shutdown waits for it).
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", http.MethodGet)
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	claims, err := s.cfg.Keys.Authenticate(r)
	if err != nil {
		s.m.refused.WithLabelValues("unauthorized").Inc()
		w.Header().Set("WWW-Authenticate", `Bearer realm="rtstack"`)
		clienterr.WriteHTTP(w, clienterr.Unauthorized, err.Error(), nil) // err says "unauthorized: …"
		return
	}
	if !s.checkOrigin(r) {
		s.m.refused.WithLabelValues("origin").Inc()
		clienterr.WriteHTTP(w, clienterr.Forbidden, "origin not allowed", nil)
		return
	}
	share, code := s.admit(claims.User())
	switch code {
	case clienterr.ShuttingDown:
		clienterr.WriteHTTP(w, code, "shutting down", nil)
		return
	case clienterr.TooManyConnections:
		s.m.refused.WithLabelValues("user_conn_limit").Inc()
		clienterr.WriteHTTP(w, code, fmt.Sprintf("at most %d connections per user", s.cfg.UserConnLimit), nil)
		return
	}
	// The connection's own goroutine takes over from here: ServeHTTP
	// returns once the connection is upgraded, so net/http's per-request
	// buffers and contexts are not held for the connection's life.
	serving := false
	defer func() {
		if !serving {
			s.release(claims.User())
			s.connWG.Done()
		}
	}()

	// The HTTP server's read and write timeouts are for plain requests; a
	// WebSocket keeps its own deadlines (PongWait, WriteWait) from here on.
	rc := http.NewResponseController(w)
	_ = rc.SetReadDeadline(time.Time{})  // unsupported by a test recorder: nothing to lift
	_ = rc.SetWriteDeadline(time.Time{}) //
	ws, err := s.up.Upgrade(w, r, nil)
	if err != nil {
		return // the upgrader has answered with an HTTP error
	}
	c := newConn(s, ws, rand.Text(), claims)
	c.userLimiter = share.limiter
	if !s.remember(c) {
		_ = ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseGoingAway, "server shutting down"), time.Now().Add(time.Second))
		_ = ws.Close()
		return
	}
	serving = true
	c.startPings()
	c.armExpiry(claims.Expiry())
	// The reader's goroutine starts in readLoop itself: the frames below
	// the read an idle connection parks in stay small, so the collector
	// shrinks its stack (grown handling actions) back to 4 KiB.
	go c.readLoop() // its teardown releases the user's share and connWG
}

// userShare is what one user's connections to this gateway share: their
// count (from before the upgrade to the end of ServeHTTP) and a rate.
type userShare struct {
	conns   int
	limiter *rate.Limiter
}

// admit counts a connection of user about to be upgraded; the code is
// non-empty when it is refused. The caller releases an admitted one and
// calls connWG.Done.
func (s *Server) admit(user string) (*userShare, string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return nil, clienterr.ShuttingDown
	}
	u := s.users[user]
	if u == nil {
		u = &userShare{limiter: rate.NewLimiter(s.cfg.UserRateLimit, s.cfg.UserBurst)}
		s.users[user] = u
	}
	if u.conns >= s.cfg.UserConnLimit {
		return nil, clienterr.TooManyConnections
	}
	u.conns++
	s.connWG.Add(1)
	return u, ""
}

func (s *Server) release(user string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if u := s.users[user]; u != nil {
		if u.conns--; u.conns <= 0 {
			delete(s.users, user)
		}
	}
}

// remember registers a live connection; false when shutting down.
func (s *Server) remember(c *conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return false
	}
	s.conns[c] = struct{}{}
	if s.byUser[c.user] == nil {
		s.byUser[c.user] = map[*conn]struct{}{}
	}
	s.byUser[c.user][c] = struct{}{}
	s.m.connections.Inc()
	return true
}

func (s *Server) forget(c *conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.conns[c]; !ok {
		return
	}
	delete(s.conns, c)
	if u := s.byUser[c.user]; u != nil {
		delete(u, c)
		if len(u) == 0 {
			delete(s.byUser, c.user)
		}
	}
	s.m.connections.Dec()
}

func (s *Server) beginCommand() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return false
	}
	s.inflight.Add(1)
	return true
}

func (s *Server) endCommand() { s.inflight.Done() }

// Shutdown stops accepting connections and actions, waits for the actions
// being appended (so their acks go out), then closes every connection with
// 1001 going away after flushing what was queued, and waits for them to
// end. It is idempotent; ctx bounds the waiting.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closing = true
	s.mu.Unlock()
	if err := waitCtx(ctx, &s.inflight); err != nil {
		return fmt.Errorf("gateway shutdown: waiting for appends: %w", err)
	}
	s.mu.Lock()
	conns := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	for _, c := range conns {
		c.close(websocket.CloseGoingAway, "server shutting down", true)
	}
	if err := waitCtx(ctx, &s.connWG); err != nil {
		return fmt.Errorf("gateway shutdown: waiting for connections: %w", err)
	}
	return nil
}

func waitCtx(ctx context.Context, wg *sync.WaitGroup) error {
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// TopicID returns the id of the log the gateway tails ("" before Run has
// found it). A client may pass it as since.topic_id so a join after the log
// was recreated is answered with resync; the HTTP API can hand it out with
// history.
func (s *Server) TopicID() string {
	s.hub.mu.Lock()
	defer s.hub.mu.Unlock()
	return s.hub.id
}

// BroadcastPresence sends {"type":"presence","room","users"} to the room's
// local connections. The presence component calls it when the room's
// online set changed.
func (s *Server) BroadcastPresence(room string, users []string) {
	if users == nil {
		users = []string{}
	}
	s.hub.broadcast(room, mustJSON(presenceFrame{Type: "presence", Room: room, Users: users}))
}

// BroadcastRoom sends frame, one JSON object, to every local connection
// subscribed to room. The Signals receiver calls it with the typing frames
// other gateways published.
func (s *Server) BroadcastRoom(room string, frame []byte) {
	s.hub.broadcast(room, frame)
}

// DeliverToUser sends frame, one JSON object, to every local connection of
// user, and reports whether there was any. A frame that is not a JSON
// object is refused (false). A frame about a room (a "room" field, as a
// mention notification has) goes only to the connections whose token allows
// that room.
func (s *Server) DeliverToUser(user string, frame []byte) bool {
	frame = bytes.TrimSpace(frame)
	var about struct {
		Room string `json:"room"`
	}
	if len(frame) == 0 || frame[0] != '{' || json.Unmarshal(frame, &about) != nil {
		return false
	}
	if bytes.IndexByte(frame, '\n') >= 0 { // newlines separate objects in a frame
		var buf bytes.Buffer
		if json.Compact(&buf, frame) != nil {
			return false
		}
		frame = buf.Bytes()
	}
	s.mu.Lock()
	conns := make([]*conn, 0, len(s.byUser[user]))
	for c := range s.byUser[user] {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	delivered := false
	for _, c := range conns {
		if about.Room != "" && !c.allows(about.Room) {
			s.m.drops.WithLabelValues("forbidden_room").Inc()
			continue
		}
		if c.push(frame) {
			delivered = true
		}
	}
	return delivered
}

func (s *Server) presenceJoin(room string, c *conn) {
	if s.cfg.Presence == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.cfg.Presence.Join(ctx, room, c.user, c.id); err != nil {
		s.log.Warn("presence join", "room", room, "conn", c.id, "err", err)
	}
}

func (s *Server) presenceLeave(room string, c *conn) {
	if s.cfg.Presence == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.cfg.Presence.Leave(ctx, room, c.user, c.id); err != nil {
		s.log.Warn("presence leave", "room", room, "conn", c.id, "err", err)
	}
}

// readBoard reads one board channel and encodes its frame.
func (s *Server) readBoard(ctx context.Context, channel, room string) ([]byte, error) {
	if channel == "leaderboard" {
		entries, err := s.cfg.Boards.Leaderboard(ctx, s.cfg.LeaderboardSize)
		if err != nil {
			return nil, fmt.Errorf("%w: leaderboard: %w", errUnavailable, err)
		}
		if entries == nil {
			entries = []view.ScoreEntry{}
		}
		return json.Marshal(leaderboardFrame{Type: "leaderboard", Entries: entries})
	}
	cs, err := s.cfg.Boards.Counters(ctx, room)
	if err != nil {
		return nil, fmt.Errorf("%w: counters of %s: %w", errUnavailable, room, err)
	}
	cs.Room = room
	return json.Marshal(countersFrame{Type: "counters", Counters: cs})
}

// boardLoop pushes changed boards to their subscribers, each board read
// once per BoardInterval at most: with BoardChanges, only the boards a
// notice marked; without, every subscribed board.
func (s *Server) boardLoop(ctx context.Context) {
	if s.cfg.Boards == nil {
		return
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	if s.cfg.BoardChanges != nil {
		wg.Go(func() { s.watchBoards(ctx) })
	}
	t := time.NewTicker(s.cfg.BoardInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		for key, room := range s.hub.boardKeys(s.cfg.BoardChanges != nil) {
			s.refreshBoard(ctx, key, room)
		}
	}
}

// refreshBoard reads one board and sends it to its subscribers if it
// changed.
func (s *Server) refreshBoard(ctx context.Context, key, room string) {
	channel := "leaderboard"
	if room != "" {
		channel = "counters"
	}
	rctx, cancel := context.WithTimeout(ctx, max(s.cfg.BoardInterval*5, time.Second))
	defer cancel()
	s.m.boardReads.Inc()
	frame, err := s.readBoard(rctx, channel, room)
	if err != nil {
		if !errors.Is(err, context.Canceled) {
			s.log.Warn("read board", "channel", channel, "room", room, "err", err)
		}
		s.hub.markDirty(key) // try again next tick
		return
	}
	s.hub.publishBoard(key, frame)
}

// watchBoards marks boards changed as BoardChanges reports, and watches
// again after a failure.
func (s *Server) watchBoards(ctx context.Context) {
	b := retry.Backoff{Min: 100 * time.Millisecond, Max: 5 * time.Second, Jitter: true}
	for {
		err := s.cfg.BoardChanges.WatchBoards(ctx, s.hub.markBoards)
		if ctx.Err() != nil {
			return
		}
		s.log.Warn("board change notices", "err", err, "attempt", b.Attempt()+1)
		if !b.Wait(ctx, nil) {
			return
		}
	}
}
