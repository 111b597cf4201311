package api

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/rtstack/rtstack/commands"
	"github.com/rtstack/rtstack/events"
	"github.com/rtstack/rtstack/gateway/auth"
	"github.com/rtstack/rtstack/gateway/clienterr"
	"github.com/rtstack/rtstack/projections/view"
)

// History reads a room's messages from the Postgres projection: at most
// limit messages, oldest first, the newest ones before the message before
// (all the newest when before is empty).
type History interface {
	History(ctx context.Context, room string, limit int, before string) ([]view.Message, error)
}

// Counters reads a room's counters from the Redis projection.
type Counters interface {
	Counters(ctx context.Context, room string) (view.Counters, error)
}

// Leaderboard reads the global leaderboard, highest first. If the value in
// Config.Leaderboard also implements RoomLeaderboard, ?room=R is served.
type Leaderboard interface {
	Leaderboard(ctx context.Context, limit int) ([]view.ScoreEntry, error)
}

// RoomLeaderboard reads one room's leaderboard, highest first.
type RoomLeaderboard interface {
	RoomLeaderboard(ctx context.Context, room string, limit int) ([]view.ScoreEntry, error)
}

// HistoryAt reads a room's messages from a named version of the Postgres
// projection (an as-of version, say). If Config.History implements it,
// ?version=NAME is served; an unknown version is an error wrapping
// view.ErrUnknownVersion (404 unknown_version).
type HistoryAt interface {
	HistoryAt(ctx context.Context, version, room string, limit int, before string) ([]view.Message, error)
}

// CountersAt reads a room's counters from a named version of the Redis
// projection; see HistoryAt.
type CountersAt interface {
	CountersAt(ctx context.Context, version, room string) (view.Counters, error)
}

// LeaderboardAt reads the leaderboards of a named version of the Redis
// projection; see HistoryAt.
type LeaderboardAt interface {
	LeaderboardAt(ctx context.Context, version string, limit int) ([]view.ScoreEntry, error)
	RoomLeaderboardAt(ctx context.Context, version, room string, limit int) ([]view.ScoreEntry, error)
}

// Checkpoints reports a projection's position: per partition, the offset
// of the next record it will apply (projections.Store.Checkpoints).
type Checkpoints interface {
	Checkpoints(ctx context.Context) (map[int32]int64, error)
}

// Webhooks registers and removes webhooks by appending events;
// *commands.Handler satisfies it.
type Webhooks interface {
	RegisterWebhook(ctx context.Context, c commands.RegisterWebhook) (commands.Result, error)
	RemoveWebhook(ctx context.Context, c commands.RemoveWebhook) (commands.Result, error)
}

// Webhook is a registered webhook as GET /api/rooms/{room}/webhooks lists
// it: never its secret.
type Webhook struct {
	ID      string `json:"id"`
	URL     string `json:"url"`
	Created int64  `json:"created"` // Unix milliseconds, the registration's event time
}

// WebhookList reads a room's webhooks, in registration order, from a read
// model.
type WebhookList interface {
	ListWebhooks(ctx context.Context, room string) ([]Webhook, error)
}

// Rebuilder starts a blue/green rebuild of target ("postgres", "redis" or
// "all") in the background and returns an id for it at once. ctx is the
// request's: the rebuild must not end with it. An error wrapping
// ErrRebuildRunning answers 409.
type Rebuilder interface {
	Start(ctx context.Context, target string) (id string, err error)
}

// ErrRebuildRunning is returned by a Rebuilder that is already rebuilding;
// clients see code rebuild_running.
var ErrRebuildRunning = clienterr.ErrRebuildRunning

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
	// Webhooks serves POST /api/rooms/{room}/webhooks and DELETE
	// /api/rooms/{room}/webhooks/{id}.
	Webhooks Webhooks
	// WebhookList serves GET /api/rooms/{room}/webhooks.
	WebhookList WebhookList
	// Rebuilder serves POST /api/admin/rebuild/{target}.
	Rebuilder Rebuilder
	// Ready are the checks of /readyz, run concurrently, each bounded by
	// CheckTimeout.
	Ready []Check
	// DevLogin serves POST /api/dev/login, which signs a token for any name
	// without a password. Only `rtstack dev` sets it: its secret is public
	// anyway. Off, the endpoint is 404 like any unknown one.
	DevLogin bool
	// DevTokenTTL is the validity of a dev login's token; default
	// DefaultDevTokenTTL (1h).
	DevTokenTTL time.Duration
	// AfterWait bounds how long ?after= waits for a projection; default
	// DefaultAfterWait (2s).
	AfterWait time.Duration
	// PollInterval is how often ?after= polls the position; default
	// DefaultPollInterval (20ms).
	PollInterval time.Duration
	// MaxBodyBytes limits request bodies; default DefaultMaxBodyBytes
	// (64 KiB).
	MaxBodyBytes int64
	// CheckTimeout bounds each readiness check; default
	// DefaultCheckTimeout (2s).
	CheckTimeout time.Duration
	// Logger receives the logs; nil discards them (the binary injects its own).
	Logger *slog.Logger
	// Registerer receives the API's metrics (rtstack_api_*); nil: none.
	Registerer prometheus.Registerer
}

// Validate reports every problem of c once its defaults are applied,
// joined.
func (c Config) Validate() error {
	c = c.withDefaults()
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

// withDefaults returns c with every zero field set to its default.
func (c Config) withDefaults() Config {
	c.AfterWait = cmp.Or(c.AfterWait, DefaultAfterWait)
	c.PollInterval = cmp.Or(c.PollInterval, DefaultPollInterval)
	c.MaxBodyBytes = cmp.Or(c.MaxBodyBytes, DefaultMaxBodyBytes)
	c.CheckTimeout = cmp.Or(c.CheckTimeout, DefaultCheckTimeout)
	c.DevTokenTTL = cmp.Or(c.DevTokenTTL, DefaultDevTokenTTL)
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.HistoryPosition == nil {
		c.HistoryPosition, _ = c.History.(Checkpoints)
	}
	if c.RedisPosition == nil {
		if cp, ok := c.Counters.(Checkpoints); ok {
			c.RedisPosition = cp
		} else if cp, ok := c.Leaderboard.(Checkpoints); ok {
			c.RedisPosition = cp
		}
	}
	return c
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
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
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
	// Webhooks receive every message of a room: an admin's to attach.
	mux.Handle("POST /api/rooms/{room}/webhooks", s.admin(s.webhooks))
	mux.Handle("GET /api/rooms/{room}/webhooks", s.admin(s.listWebhooks))
	mux.Handle("DELETE /api/rooms/{room}/webhooks/{id}", s.admin(s.removeWebhook))
	mux.Handle("POST /api/admin/rebuild/{target}", s.admin(s.rebuild))
	if cfg.DevLogin {
		mux.HandleFunc("POST /api/dev/login", s.devLogin)
	}
	mux.HandleFunc("/api/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, clienterr.NotFound, "no such endpoint: "+r.Method+" "+r.URL.Path)
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
			writeError(w, clienterr.Unauthorized, err.Error())
			return
		}
		h(w, r.WithContext(context.WithValue(r.Context(), claimsKey{}, c)))
	})
}

// admin also requires the admin claim (403).
func (s *server) admin(h http.HandlerFunc) http.Handler {
	return s.user(func(w http.ResponseWriter, r *http.Request) {
		if !claims(r).Admin {
			writeError(w, clienterr.Forbidden, "admin token required")
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
	var down []string
	for range s.cfg.Ready {
		res := <-results
		if res.err != nil {
			// The caller is not authenticated: it learns which dependency
			// is down, the log learns why.
			s.log.Warn("not ready", "check", res.name, "err", res.err)
			down = append(down, res.name)
		}
	}
	if len(down) > 0 {
		slices.Sort(down)
		clienterr.WriteHTTP(w, clienterr.Unavailable, "not ready: "+strings.Join(down, ", ")+" down",
			map[string]any{"status": "unavailable", "down": down})
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

func (s *server) messages(w http.ResponseWriter, r *http.Request) {
	if s.cfg.History == nil {
		writeError(w, clienterr.NotConfigured, "message history is not configured")
		return
	}
	room, ok := roomParam(w, r)
	if !ok {
		return
	}
	q := r.URL.Query()
	limit, err := intParam(q.Get("limit"), DefaultHistoryLimit, MaxHistoryLimit)
	if err != nil {
		writeError(w, clienterr.Invalid, "limit: "+err.Error())
		return
	}
	before := q.Get("before")
	if len(before) > 128 {
		writeError(w, clienterr.Invalid, "before: not a message id")
		return
	}
	version, ok := versionParam(w, r)
	if !ok {
		return
	}
	var msgs []view.Message
	if version != "" {
		at, ok := s.cfg.History.(HistoryAt)
		if !ok {
			writeError(w, clienterr.NotConfigured, "versions of the message history are not configured")
			return
		}
		msgs, err = at.HistoryAt(r.Context(), version, room, limit, before)
	} else {
		if !s.position(w, r, s.cfg.HistoryPosition) {
			return
		}
		msgs, err = s.cfg.History.History(r.Context(), room, limit, before)
	}
	if err != nil {
		s.fail(w, r, "read history", err)
		return
	}
	if msgs == nil {
		msgs = []view.Message{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"messages": msgs})
}

func (s *server) counters(w http.ResponseWriter, r *http.Request) {
	if s.cfg.Counters == nil {
		writeError(w, clienterr.NotConfigured, "counters are not configured")
		return
	}
	room, ok := roomParam(w, r)
	if !ok {
		return
	}
	version, ok := versionParam(w, r)
	if !ok {
		return
	}
	var c view.Counters
	var err error
	if version != "" {
		at, ok := s.cfg.Counters.(CountersAt)
		if !ok {
			writeError(w, clienterr.NotConfigured, "versions of the counters are not configured")
			return
		}
		c, err = at.CountersAt(r.Context(), version, room)
	} else {
		if !s.position(w, r, s.cfg.RedisPosition) {
			return
		}
		c, err = s.cfg.Counters.Counters(r.Context(), room)
	}
	if err != nil {
		s.fail(w, r, "read counters", err)
		return
	}
	writeJSON(w, http.StatusOK, c)
}

func (s *server) leaderboard(w http.ResponseWriter, r *http.Request) {
	if s.cfg.Leaderboard == nil {
		writeError(w, clienterr.NotConfigured, "leaderboards are not configured")
		return
	}
	q := r.URL.Query()
	limit, err := intParam(q.Get("limit"), DefaultLeaderboardLimit, MaxLeaderboardLimit)
	if err != nil {
		writeError(w, clienterr.Invalid, "limit: "+err.Error())
		return
	}
	room := q.Get("room")
	var byRoom RoomLeaderboard
	if q.Has("room") {
		if err := commands.ValidateRoom(room); err != nil {
			writeError(w, clienterr.BadRoom, "room: "+err.Error())
			return
		}
		if !allowRoom(w, r, room) {
			return
		}
		var ok bool
		if byRoom, ok = s.cfg.Leaderboard.(RoomLeaderboard); !ok {
			writeError(w, clienterr.NotConfigured, "per-room leaderboards are not configured")
			return
		}
	}
	version, ok := versionParam(w, r)
	if !ok {
		return
	}
	var entries []view.ScoreEntry
	switch at, versioned := s.cfg.Leaderboard.(LeaderboardAt); {
	case version != "" && !versioned:
		writeError(w, clienterr.NotConfigured, "versions of the leaderboards are not configured")
		return
	case version != "" && byRoom != nil:
		entries, err = at.RoomLeaderboardAt(r.Context(), version, room, limit)
	case version != "":
		entries, err = at.LeaderboardAt(r.Context(), version, limit)
	case !s.position(w, r, s.cfg.RedisPosition):
		return
	case byRoom != nil:
		entries, err = byRoom.RoomLeaderboard(r.Context(), room, limit)
	default:
		entries, err = s.cfg.Leaderboard.Leaderboard(r.Context(), limit)
	}
	if err != nil {
		s.fail(w, r, "read leaderboard", err)
		return
	}
	if entries == nil {
		entries = []view.ScoreEntry{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"entries": entries})
}

type webhookRequest struct {
	URL    string `json:"url"`
	Secret string `json:"secret"`
}

// webhookRoom answers 501 unless configured, then reads the room.
func webhookRoom(w http.ResponseWriter, r *http.Request, configured bool) (string, bool) {
	if !configured {
		writeError(w, clienterr.NotConfigured, "webhooks are not configured")
		return "", false
	}
	return roomParam(w, r)
}

func (s *server) webhooks(w http.ResponseWriter, r *http.Request) {
	room, ok := webhookRoom(w, r, s.cfg.Webhooks != nil)
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
	if err != nil {
		s.commandFailed(w, r, "register webhook", room, err)
		return
	}
	id := ""
	if ev, ok := res.Event.(*events.WebhookRegistered); ok {
		id = ev.WebhookID
	}
	s.log.Info("api: webhook registered", "room", room, "webhook_id", id, "user", claims(r).User())
	writeJSON(w, http.StatusCreated, map[string]any{
		"webhook_id": id,
		"partition":  res.Position.Partition,
		"offset":     res.Position.Offset,
	})
}

// commandFailed answers the error of a command: a client error with its
// code, an unavailable log or read model with 503, anything else 500.
func (s *server) commandFailed(w http.ResponseWriter, r *http.Request, what, room string, err error) {
	switch class, known := clienterr.Of(err); {
	case class.Code == clienterr.Unavailable:
		s.log.Warn("api: "+what+" failed", "room", room, "err", err)
		writeError(w, clienterr.Unavailable, "the event log or a read model is unavailable; try again")
	case known && class.Status < 500:
		writeError(w, class.Code, err.Error())
	default:
		s.fail(w, r, what, err)
	}
}

func (s *server) listWebhooks(w http.ResponseWriter, r *http.Request) {
	room, ok := webhookRoom(w, r, s.cfg.WebhookList != nil)
	if !ok {
		return
	}
	hooks, err := s.cfg.WebhookList.ListWebhooks(r.Context(), room)
	if err != nil {
		s.fail(w, r, "list webhooks", err)
		return
	}
	if hooks == nil {
		hooks = []Webhook{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"webhooks": hooks})
}

func (s *server) removeWebhook(w http.ResponseWriter, r *http.Request) {
	room, ok := webhookRoom(w, r, s.cfg.Webhooks != nil)
	if !ok {
		return
	}
	id := r.PathValue("id")
	res, err := s.cfg.Webhooks.RemoveWebhook(r.Context(), commands.RemoveWebhook{Room: room, User: claims(r).User(), WebhookID: id})
	if err != nil {
		s.commandFailed(w, r, "remove webhook", room, err)
		return
	}
	s.log.Info("api: webhook removed", "room", room, "webhook_id", id, "user", claims(r).User())
	writeJSON(w, http.StatusOK, map[string]any{
		"webhook_id": id,
		"partition":  res.Position.Partition,
		"offset":     res.Position.Offset,
	})
}

func (s *server) rebuild(w http.ResponseWriter, r *http.Request) {
	if s.cfg.Rebuilder == nil {
		writeError(w, clienterr.NotConfigured, "rebuilds are not configured")
		return
	}
	target := r.PathValue("target")
	switch target {
	case "postgres", "redis", "all":
	default:
		writeError(w, clienterr.NotFound, fmt.Sprintf("unknown rebuild target %q: want postgres, redis or all", target))
		return
	}
	id, err := s.cfg.Rebuilder.Start(r.Context(), target)
	if errors.Is(err, ErrRebuildRunning) {
		writeError(w, clienterr.RebuildRunning, err.Error())
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
	if c, _ := clienterr.Of(err); c.Code == clienterr.UnknownVersion {
		writeError(w, c.Code, "no such version: list them with `rtstack versions list`")
		return
	}
	s.log.Error("api: "+what, "path", r.URL.Path, "err", err)
	writeError(w, clienterr.Internal, what+" failed")
}

// versionParam returns ?version=NAME ("" when absent: the active version),
// answering 400 for an empty or over-long name, or with ?after= (a
// version's content is fixed; after= waits for the active one).
func versionParam(w http.ResponseWriter, r *http.Request) (string, bool) {
	q := r.URL.Query()
	if !q.Has("version") {
		return "", true
	}
	v := q.Get("version")
	switch {
	case v == "" || len(v) > 64:
		writeError(w, clienterr.Invalid, "version: want a version name from `rtstack versions list`")
		return "", false
	case q.Has("after"):
		writeError(w, clienterr.Invalid, "after: not with version (a version's content is fixed)")
		return "", false
	}
	return v, true
}

// roomParam returns the request's {room}, answering 400 for a bad name and
// 403 for a room the token's rooms claim does not allow.
func roomParam(w http.ResponseWriter, r *http.Request) (string, bool) {
	room := r.PathValue("room")
	if err := commands.ValidateRoom(room); err != nil {
		writeError(w, clienterr.BadRoom, err.Error())
		return "", false
	}
	return room, allowRoom(w, r, room)
}

// allowRoom answers 403 forbidden unless the token allows room.
func allowRoom(w http.ResponseWriter, r *http.Request, room string) bool {
	if err := claims(r).CheckRoom(room); err != nil {
		writeError(w, clienterr.Forbidden, err.Error())
		return false
	}
	return true
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
			writeError(w, clienterr.TooLarge, fmt.Sprintf("request body over %d bytes", tooBig.Limit))
			return false
		}
		if errors.Is(err, io.EOF) {
			writeError(w, clienterr.BadJSON, "request body is empty: a JSON object expected")
			return false
		}
		writeError(w, clienterr.BadJSON, "request body: "+err.Error())
		return false
	}
	if dec.More() {
		writeError(w, clienterr.BadJSON, "request body: one JSON object expected")
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

// writeError answers code (its status from clienterr.Table) with msg.
func writeError(w http.ResponseWriter, code, msg string) {
	clienterr.WriteHTTP(w, code, msg, nil)
}
