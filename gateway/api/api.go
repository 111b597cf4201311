package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/rtstack/rtstack/commands"
	"github.com/rtstack/rtstack/events"
	"github.com/rtstack/rtstack/gateway/auth"
	"github.com/rtstack/rtstack/projections"
)

// History reads a room's messages from the Postgres projection: at most
// limit messages, oldest first, the newest ones before the message before
// (all the newest when before is empty).
type History interface {
	History(ctx context.Context, room string, limit int, before string) ([]projections.Message, error)
}

// Counters reads a room's counters from the Redis projection.
type Counters interface {
	Counters(ctx context.Context, room string) (projections.Counters, error)
}

// Leaderboard reads the global leaderboard, highest first. If the value in
// Config.Leaderboard also implements RoomLeaderboard, ?room=R is served.
type Leaderboard interface {
	Leaderboard(ctx context.Context, limit int) ([]projections.ScoreEntry, error)
}

// RoomLeaderboard reads one room's leaderboard, highest first.
type RoomLeaderboard interface {
	RoomLeaderboard(ctx context.Context, room string, limit int) ([]projections.ScoreEntry, error)
}

// Checkpoints reports a projection's position: per partition, the offset
// of the next record it will apply (projections.Store.Checkpoints).
type Checkpoints interface {
	Checkpoints(ctx context.Context) (map[int32]int64, error)
}

// Webhooks registers a webhook by appending an event; *commands.Handler
// satisfies it.
type Webhooks interface {
	RegisterWebhook(ctx context.Context, c commands.RegisterWebhook) (commands.Result, error)
}

// Rebuilder starts a blue/green rebuild of target ("postgres", "redis" or
// "all") in the background and returns an id for it at once. ctx is the
// request's: the rebuild must not end with it. An error wrapping
// ErrRebuildRunning answers 409.
type Rebuilder interface {
	Start(ctx context.Context, target string) (id string, err error)
}

// ErrRebuildRunning is returned by a Rebuilder that is already rebuilding.
var ErrRebuildRunning = errors.New("a rebuild is already running")

// Check is one named readiness check for /readyz.
type Check struct {
	Name  string
	Check func(ctx context.Context) error
}

// Defaults of Config.
const (
	DefaultAfterWait    = 2 * time.Second
	DefaultPollInterval = 20 * time.Millisecond
	DefaultMaxBodyBytes = 64 << 10
	DefaultCheckTimeout = 2 * time.Second
	DefaultDevTokenTTL  = time.Hour

	DefaultHistoryLimit     = 50
	MaxHistoryLimit         = 500
	DefaultLeaderboardLimit = 10
	MaxLeaderboardLimit     = 1000
)

// Config configures the API. Keys is required; each reader or writer left
// nil makes its endpoints answer 501.
type Config struct {
	// Keys verifies the tokens of every /api request.
	Keys *auth.Keys
	// History serves GET /api/rooms/{room}/messages.
	History History
	// HistoryPosition is the Postgres projection's position; default
	// History itself if it implements Checkpoints. Without one, responses
	// carry no position header and ?after= is refused.
	HistoryPosition Checkpoints
	// Counters serves GET /api/rooms/{room}/counters.
	Counters Counters
	// Leaderboard serves GET /api/leaderboard.
	Leaderboard Leaderboard
	// RedisPosition is the Redis projection's position, for counters and
	// leaderboards; default Counters (else Leaderboard) if it implements
	// Checkpoints.
	RedisPosition Checkpoints
	// Webhooks serves POST /api/rooms/{room}/webhooks.
	Webhooks Webhooks
	// Rebuilder serves POST /api/admin/rebuild/{target}.
	Rebuilder Rebuilder
	// Ready are the checks of /readyz, run concurrently, each bounded by
	// CheckTimeout.
	Ready []Check
	// DevLogin serves POST /api/dev/login, which signs a token for any name
	// without a password. Only `rtstack dev` sets it: its secret is public
	// anyway. Off, the endpoint is 404 like any unknown one.
	DevLogin bool
	// DevTokenTTL is the validity of a dev login's token; default 1h.
	DevTokenTTL time.Duration
	// AfterWait bounds how long ?after= waits for a projection; default 2s.
	AfterWait time.Duration
	// PollInterval is how often ?after= polls the position; default 20ms.
	PollInterval time.Duration
	// MaxBodyBytes limits request bodies; default 64 KiB.
	MaxBodyBytes int64
	// CheckTimeout bounds each readiness check; default 2s.
	CheckTimeout time.Duration
	// Logger; default slog.Default().
	Logger *slog.Logger
	// Registerer receives the API's metrics (rtstack_api_*); nil: none.
	Registerer prometheus.Registerer
}

// Validate reports every problem of c, joined.
func (c Config) Validate() error {
	var errs []error
	if c.Keys == nil {
		errs = append(errs, errors.New("api: Config.Keys is required"))
	}
	if c.AfterWait < 0 || c.PollInterval < 0 || c.MaxBodyBytes < 0 || c.CheckTimeout < 0 || c.DevTokenTTL < 0 {
		errs = append(errs, errors.New("api: durations and sizes must not be negative"))
	}
	for i, ch := range c.Ready {
		if ch.Name == "" || ch.Check == nil {
			errs = append(errs, fmt.Errorf("api: Config.Ready[%d] needs a Name and a Check", i))
		}
	}
	return errors.Join(errs...)
}

type server struct {
	cfg     Config
	log     *slog.Logger
	metrics *metrics
}

// New returns the API handler. It serves /api/..., /healthz and /readyz;
// mount it on those patterns (or at "/" of a mux that routes the rest
// elsewhere).
func New(cfg Config) (http.Handler, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.AfterWait == 0 {
		cfg.AfterWait = DefaultAfterWait
	}
	if cfg.PollInterval == 0 {
		cfg.PollInterval = DefaultPollInterval
	}
	if cfg.MaxBodyBytes == 0 {
		cfg.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if cfg.CheckTimeout == 0 {
		cfg.CheckTimeout = DefaultCheckTimeout
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.DevTokenTTL == 0 {
		cfg.DevTokenTTL = DefaultDevTokenTTL
	}
	if cfg.HistoryPosition == nil {
		cfg.HistoryPosition, _ = cfg.History.(Checkpoints)
	}
	if cfg.RedisPosition == nil {
		if cp, ok := cfg.Counters.(Checkpoints); ok {
			cfg.RedisPosition = cp
		} else if cp, ok := cfg.Leaderboard.(Checkpoints); ok {
			cfg.RedisPosition = cp
		}
	}
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, err
	}
	s := &server{cfg: cfg, log: cfg.Logger, metrics: m}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", s.healthz)
	mux.HandleFunc("GET /readyz", s.readyz)
	mux.Handle("GET /api/rooms/{room}/messages", s.user(s.messages))
	mux.Handle("GET /api/rooms/{room}/counters", s.user(s.counters))
	mux.Handle("GET /api/leaderboard", s.user(s.leaderboard))
	mux.Handle("POST /api/rooms/{room}/webhooks", s.user(s.webhooks))
	mux.Handle("POST /api/admin/rebuild/{target}", s.admin(s.rebuild))
	if cfg.DevLogin {
		mux.HandleFunc("POST /api/dev/login", s.devLogin)
	}
	mux.HandleFunc("/api/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "no such endpoint: "+r.Method+" "+r.URL.Path)
	})
	return m.instrument(s.limitBody(mux)), nil
}

func (s *server) limitBody(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body != nil {
			r.Body = http.MaxBytesReader(w, r.Body, s.cfg.MaxBodyBytes)
		}
		h.ServeHTTP(w, r)
	})
}

type claimsKey struct{}

// user refuses requests without a valid token (401), as /ws does.
func (s *server) user(h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := s.cfg.Keys.Authenticate(r)
		if err != nil {
			w.Header().Set("WWW-Authenticate", `Bearer realm="rtstack"`)
			writeError(w, http.StatusUnauthorized, err.Error())
			return
		}
		h(w, r.WithContext(context.WithValue(r.Context(), claimsKey{}, c)))
	})
}

// admin also requires the admin claim (403).
func (s *server) admin(h http.HandlerFunc) http.Handler {
	return s.user(func(w http.ResponseWriter, r *http.Request) {
		if !claims(r).Admin {
			writeError(w, http.StatusForbidden, "admin token required")
			return
		}
		h(w, r)
	})
}

func claims(r *http.Request) auth.Claims {
	c, _ := r.Context().Value(claimsKey{}).(auth.Claims)
	return c
}

func (s *server) healthz(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

func (s *server) readyz(w http.ResponseWriter, r *http.Request) {
	type result struct {
		name string
		err  error
	}
	results := make(chan result, len(s.cfg.Ready))
	for _, ch := range s.cfg.Ready {
		go func() { // bounded by CheckTimeout; readyz waits for all
			ctx, cancel := context.WithTimeout(r.Context(), s.cfg.CheckTimeout)
			defer cancel()
			results <- result{ch.Name, ch.Check(ctx)}
		}()
	}
	down := map[string]string{}
	for range s.cfg.Ready {
		res := <-results
		if res.err != nil {
			down[res.name] = res.err.Error()
		}
	}
	if len(down) > 0 {
		names := slices.Sorted(maps.Keys(down))
		writeJSON(w, http.StatusServiceUnavailable, map[string]any{
			"status": "unavailable",
			"error":  "not ready: " + strings.Join(names, ", ") + " down",
			"down":   down,
		})
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

func (s *server) messages(w http.ResponseWriter, r *http.Request) {
	if s.cfg.History == nil {
		writeError(w, http.StatusNotImplemented, "message history is not configured")
		return
	}
	room, ok := roomParam(w, r)
	if !ok {
		return
	}
	q := r.URL.Query()
	limit, err := intParam(q.Get("limit"), DefaultHistoryLimit, MaxHistoryLimit)
	if err != nil {
		writeError(w, http.StatusBadRequest, "limit: "+err.Error())
		return
	}
	before := q.Get("before")
	if len(before) > 128 {
		writeError(w, http.StatusBadRequest, "before: not a message id")
		return
	}
	if !s.position(w, r, s.cfg.HistoryPosition) {
		return
	}
	msgs, err := s.cfg.History.History(r.Context(), room, limit, before)
	if err != nil {
		s.fail(w, r, "read history", err)
		return
	}
	if msgs == nil {
		msgs = []projections.Message{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"messages": msgs})
}

func (s *server) counters(w http.ResponseWriter, r *http.Request) {
	if s.cfg.Counters == nil {
		writeError(w, http.StatusNotImplemented, "counters are not configured")
		return
	}
	room, ok := roomParam(w, r)
	if !ok {
		return
	}
	if !s.position(w, r, s.cfg.RedisPosition) {
		return
	}
	c, err := s.cfg.Counters.Counters(r.Context(), room)
	if err != nil {
		s.fail(w, r, "read counters", err)
		return
	}
	writeJSON(w, http.StatusOK, c)
}

func (s *server) leaderboard(w http.ResponseWriter, r *http.Request) {
	if s.cfg.Leaderboard == nil {
		writeError(w, http.StatusNotImplemented, "leaderboards are not configured")
		return
	}
	q := r.URL.Query()
	limit, err := intParam(q.Get("limit"), DefaultLeaderboardLimit, MaxLeaderboardLimit)
	if err != nil {
		writeError(w, http.StatusBadRequest, "limit: "+err.Error())
		return
	}
	room := q.Get("room")
	var byRoom RoomLeaderboard
	if q.Has("room") {
		if err := commands.ValidateRoom(room); err != nil {
			writeError(w, http.StatusBadRequest, "room: "+err.Error())
			return
		}
		var ok bool
		if byRoom, ok = s.cfg.Leaderboard.(RoomLeaderboard); !ok {
			writeError(w, http.StatusNotImplemented, "per-room leaderboards are not configured")
			return
		}
	}
	if !s.position(w, r, s.cfg.RedisPosition) {
		return
	}
	var entries []projections.ScoreEntry
	if byRoom != nil {
		entries, err = byRoom.RoomLeaderboard(r.Context(), room, limit)
	} else {
		entries, err = s.cfg.Leaderboard.Leaderboard(r.Context(), limit)
	}
	if err != nil {
		s.fail(w, r, "read leaderboard", err)
		return
	}
	if entries == nil {
		entries = []projections.ScoreEntry{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"entries": entries})
}

type webhookRequest struct {
	URL    string `json:"url"`
	Secret string `json:"secret"`
}

func (s *server) webhooks(w http.ResponseWriter, r *http.Request) {
	if s.cfg.Webhooks == nil {
		writeError(w, http.StatusNotImplemented, "webhooks are not configured")
		return
	}
	room, ok := roomParam(w, r)
	if !ok {
		return
	}
	var req webhookRequest
	if !decodeBody(w, r, &req) {
		return
	}
	res, err := s.cfg.Webhooks.RegisterWebhook(r.Context(), commands.RegisterWebhook{
		Room: room, User: claims(r).User(), URL: req.URL, Secret: req.Secret,
	})
	switch {
	case errors.Is(err, commands.ErrBadURL), errors.Is(err, commands.ErrInvalid),
		errors.Is(err, commands.ErrBadRoom), errors.Is(err, commands.ErrBadUTF8):
		writeError(w, http.StatusBadRequest, err.Error())
		return
	case errors.Is(err, commands.ErrAppend):
		s.log.Warn("api: webhook append failed", "room", room, "err", err)
		writeError(w, http.StatusServiceUnavailable, "the event log is unavailable; try again")
		return
	case err != nil:
		s.fail(w, r, "register webhook", err)
		return
	}
	id := ""
	if ev, ok := res.Event.(*events.WebhookRegistered); ok {
		id = ev.WebhookID
	}
	writeJSON(w, http.StatusCreated, map[string]any{
		"webhook_id": id,
		"partition":  res.Position.Partition,
		"offset":     res.Position.Offset,
	})
}

func (s *server) rebuild(w http.ResponseWriter, r *http.Request) {
	if s.cfg.Rebuilder == nil {
		writeError(w, http.StatusNotImplemented, "rebuilds are not configured")
		return
	}
	target := r.PathValue("target")
	switch target {
	case "postgres", "redis", "all":
	default:
		writeError(w, http.StatusNotFound, fmt.Sprintf("unknown rebuild target %q: want postgres, redis or all", target))
		return
	}
	id, err := s.cfg.Rebuilder.Start(r.Context(), target)
	if errors.Is(err, ErrRebuildRunning) {
		writeError(w, http.StatusConflict, err.Error())
		return
	}
	if err != nil {
		s.fail(w, r, "start rebuild", err)
		return
	}
	s.log.Info("api: rebuild started", "target", target, "rebuild_id", id, "user", claims(r).User())
	writeJSON(w, http.StatusAccepted, map[string]string{"rebuild_id": id, "target": target})
}

// fail answers 500 without leaking internals and logs why.
func (s *server) fail(w http.ResponseWriter, r *http.Request, what string, err error) {
	if r.Context().Err() != nil {
		return // the client went away
	}
	s.log.Error("api: "+what, "path", r.URL.Path, "err", err)
	writeError(w, http.StatusInternalServerError, what+" failed")
}

func roomParam(w http.ResponseWriter, r *http.Request) (string, bool) {
	room := r.PathValue("room")
	if err := commands.ValidateRoom(room); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return "", false
	}
	return room, true
}

// intParam parses an optional positive integer: empty means def, more than
// max is an error (a client asking for more than it can get should know).
func intParam(s string, def, max int) (int, error) {
	if s == "" {
		return def, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 {
		return 0, fmt.Errorf("%q is not a positive integer", s)
	}
	if n > max {
		return 0, fmt.Errorf("%d is over the maximum of %d", n, max)
	}
	return n, nil
}

func decodeBody(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("request body over %d bytes", tooBig.Limit))
			return false
		}
		writeError(w, http.StatusBadRequest, "request body: "+err.Error())
		return false
	}
	if dec.More() {
		writeError(w, http.StatusBadRequest, "request body: one JSON object expected")
		return false
	}
	return true
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v) // the client may have gone; nothing to do
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}
