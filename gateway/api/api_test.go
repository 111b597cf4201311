package api_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/rtstack/rtstack/commands"
	"github.com/rtstack/rtstack/events"
	"github.com/rtstack/rtstack/gateway/api"
	"github.com/rtstack/rtstack/gateway/auth"
	"github.com/rtstack/rtstack/gateway/clienterr"
	"github.com/rtstack/rtstack/internal/keyring"
	"github.com/rtstack/rtstack/projections/view"
)

// position is an in-test projection position that the test advances.
type position struct {
	mu     sync.Mutex
	next   map[int32]int64
	polled chan struct{} // receives on every Checkpoints call
	err    error
}

func newPosition(next map[int32]int64) *position {
	return &position{next: next, polled: make(chan struct{}, 1000)}
}

func (p *position) Checkpoints(context.Context) (map[int32]int64, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case p.polled <- struct{}{}:
	default:
	}
	out := make(map[int32]int64, len(p.next))
	for k, v := range p.next {
		out[k] = v
	}
	return out, p.err
}

func (p *position) set(part int32, next int64) {
	p.mu.Lock()
	p.next[part] = next
	p.mu.Unlock()
}

// history is an in-test History over a fixed list of messages.
type history struct {
	*position
	mu   sync.Mutex
	msgs []view.Message
	args []string
}

func (h *history) History(_ context.Context, room string, limit int, before string) ([]view.Message, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.args = append(h.args, fmt.Sprintf("%s/%d/%s", room, limit, before))
	if room == "broken" {
		return nil, errors.New("database on fire")
	}
	var out []view.Message
	for _, m := range h.msgs {
		if m.MessageID == before {
			break
		}
		out = append(out, m)
	}
	if len(out) > limit {
		out = out[len(out)-limit:]
	}
	return out, nil
}

type redisReads struct{ *position }

func (redisReads) Counters(_ context.Context, room string) (view.Counters, error) {
	return view.Counters{Room: room, Total: 7, Members: 2, PerMinute: []view.MinuteCount{{Minute: 60000, Count: 7}}}, nil
}

func (redisReads) Leaderboard(_ context.Context, limit int) ([]view.ScoreEntry, error) {
	return []view.ScoreEntry{{User: "alice", Score: int64(limit)}}, nil
}

func (redisReads) RoomLeaderboard(_ context.Context, room string, limit int) ([]view.ScoreEntry, error) {
	return []view.ScoreEntry{{User: room, Score: int64(limit)}}, nil
}

// memLog is an in-test commands.Log handing out increasing offsets.
type memLog struct {
	mu   sync.Mutex
	next int64
	evs  []events.Event
}

func (l *memLog) Append(_ context.Context, ev events.Event) (events.Position, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.evs = append(l.evs, ev)
	l.next++
	return events.Position{Partition: 2, Offset: l.next - 1}, nil
}

type rebuilder struct {
	mu      sync.Mutex
	targets []string
	busy    bool
}

func (r *rebuilder) Start(_ context.Context, target string) (string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.busy {
		return "", fmt.Errorf("rebuild %s: %w", target, api.ErrRebuildRunning)
	}
	r.targets = append(r.targets, target)
	return "rb-" + target, nil
}

type fixture struct {
	srv     *httptest.Server
	keys    *auth.Keys
	hist    *history
	redis   redisReads
	log     *memLog
	rebuild *rebuilder
	user    string // token of a plain user
	admin   string // token of an admin
	keyring *keyring.Keyring
}

type hookList map[string][]api.Webhook

func (h hookList) ListWebhooks(_ context.Context, room string) ([]api.Webhook, error) {
	return h[room], nil
}

func setup(t *testing.T, mutate ...func(*api.Config)) *fixture {
	t.Helper()
	keys, err := auth.NewKeys("test-secret")
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{keys: keys, log: &memLog{}, rebuild: &rebuilder{}}
	f.hist = &history{position: newPosition(map[int32]int64{0: 18, 1: 5})}
	for i := range 5 {
		f.hist.msgs = append(f.hist.msgs, view.Message{MessageID: fmt.Sprintf("m%d", i), Room: "lobby", User: "alice", Text: fmt.Sprint("hello ", i), Partition: 0, Offset: int64(i)})
	}
	f.redis = redisReads{newPosition(map[int32]int64{0: 3})}
	f.keyring, err = keyring.Parse(keyring.NewSpec("k1"))
	if err != nil {
		t.Fatal(err)
	}
	handler, err := commands.NewHandler(commands.Config{Log: f.log, Sealer: f.keyring})
	if err != nil {
		t.Fatal(err)
	}
	cfg := api.Config{
		Keys:         keys,
		History:      f.hist,
		Counters:     f.redis,
		Leaderboard:  f.redis,
		Webhooks:     handler,
		WebhookList:  hookList{"lobby": {{ID: "w1", URL: "https://example.com/hook", Created: 1700}}},
		Rebuilder:    f.rebuild,
		AfterWait:    300 * time.Millisecond,
		PollInterval: 5 * time.Millisecond,
		MaxBodyBytes: 1024,
		Logger:       slog.New(slog.DiscardHandler),
		Ready: []api.Check{
			{Name: "kafka", Check: func(context.Context) error { return nil }},
		},
	}
	for _, m := range mutate {
		m(&cfg)
	}
	h, err := api.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	f.srv = httptest.NewServer(h)
	t.Cleanup(f.srv.Close)
	f.user, _ = keys.Sign("alice", "Alice", false, time.Hour)
	f.admin, _ = keys.Sign("root", "", true, time.Hour)
	return f
}

type response struct {
	status int
	header http.Header
	body   map[string]any
	raw    string
}

func (f *fixture) do(t *testing.T, method, path, token, body string) response {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(context.Background(), method, f.srv.URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	out := response{status: res.StatusCode, header: res.Header, raw: string(b)}
	if ct := res.Header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("%s %s: Content-Type %q, want application/json (body %s)", method, path, ct, b)
	}
	if err := json.Unmarshal(b, &out.body); err != nil {
		t.Fatalf("%s %s: body %q is not a JSON object: %v", method, path, b, err)
	}
	return out
}

func (r response) want(t *testing.T, status int) response {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d; body %s", r.status, status, r.raw)
	}
	if status >= 400 {
		if r.message() == "" {
			t.Fatalf("error response without an error message: %s", r.raw)
		}
		if code := r.code(); clienterr.Lookup(code).Status != status || code == "" {
			t.Fatalf("error code %q does not answer status %d: %s", code, status, r.raw)
		}
	}
	return r
}

func (r response) errorDetail() map[string]any {
	d, _ := r.body["error"].(map[string]any)
	return d
}

// message is the error body's message, code its code.
func (r response) message() string { s, _ := r.errorDetail()["message"].(string); return s }
func (r response) code() string    { s, _ := r.errorDetail()["code"].(string); return s }

func TestAuth(t *testing.T) {
	f := setup(t)
	expired, _ := f.keys.Sign("alice", "", false, -time.Minute)
	other, _ := auth.NewKeys("other")
	foreign, _ := other.Sign("alice", "", false, time.Hour)
	paths := []struct{ method, path, body string }{
		{"GET", "/api/rooms/lobby/messages", ""},
		{"GET", "/api/rooms/lobby/counters", ""},
		{"GET", "/api/leaderboard", ""},
		{"POST", "/api/rooms/lobby/webhooks", `{"url":"https://example.com/h","secret":"s"}`},
		{"POST", "/api/admin/rebuild/all", ""},
	}
	for _, p := range paths {
		for name, tok := range map[string]string{"missing": "", "garbage": "x.y.z", "expired": expired, "foreign": foreign} {
			t.Run(p.path+"/"+name, func(t *testing.T) {
				r := f.do(t, p.method, p.path, tok, p.body).want(t, http.StatusUnauthorized)
				if r.header.Get("WWW-Authenticate") == "" {
					t.Fatal("401 without WWW-Authenticate")
				}
				if m := r.message(); r.code() != clienterr.Unauthorized || strings.Count(m, "unauthorized") != 1 {
					t.Fatalf("401 error %s, want code unauthorized and the word once in its message", r.raw)
				}
			})
		}
	}
	// ?token= works as on /ws.
	f.do(t, "GET", "/api/leaderboard?token="+f.user, "", "").want(t, http.StatusOK)
	// A user token is not an admin token.
	f.do(t, "POST", "/api/admin/rebuild/all", f.user, "").want(t, http.StatusForbidden)
	if len(f.rebuild.targets) != 0 {
		t.Fatalf("rebuild started by a non-admin: %v", f.rebuild.targets)
	}
	// Probes need no token.
	f.do(t, "GET", "/healthz", "", "").want(t, http.StatusOK)
	f.do(t, "GET", "/readyz", "", "").want(t, http.StatusOK)
}

func TestHistory(t *testing.T) {
	f := setup(t)
	r := f.do(t, "GET", "/api/rooms/lobby/messages", f.user, "").want(t, http.StatusOK)
	msgs := r.body["messages"].([]any)
	if len(msgs) != 5 {
		t.Fatalf("%d messages, want 5", len(msgs))
	}
	first := msgs[0].(map[string]any)
	for _, k := range []string{"message_id", "user", "text", "ts", "partition", "offset", "edited", "deleted"} {
		if _, ok := first[k]; !ok {
			t.Fatalf("message lacks %q: %v", k, first)
		}
	}
	if first["message_id"] != "m0" {
		t.Fatalf("first message %v, want m0 (oldest first)", first["message_id"])
	}
	if got := r.header.Get(api.PositionHeader); got != "0:17,1:4" {
		t.Fatalf("%s = %q, want 0:17,1:4", api.PositionHeader, got)
	}

	r = f.do(t, "GET", "/api/rooms/lobby/messages?limit=2&before=m3", f.user, "").want(t, http.StatusOK)
	msgs = r.body["messages"].([]any)
	if len(msgs) != 2 || msgs[0].(map[string]any)["message_id"] != "m1" || msgs[1].(map[string]any)["message_id"] != "m2" {
		t.Fatalf("limit=2&before=m3 gave %v", msgs)
	}
	if got := f.hist.args[len(f.hist.args)-1]; got != "lobby/2/m3" {
		t.Fatalf("History called with %s", got)
	}
	f.do(t, "GET", "/api/rooms/lobby/messages?limit=500", f.user, "").want(t, http.StatusOK)
	if got := f.hist.args[0]; got != "lobby/50/" {
		t.Fatalf("default limit: History called with %s", got)
	}
	// An empty room is an empty list, not null.
	f.hist.msgs = nil
	r = f.do(t, "GET", "/api/rooms/empty/messages", f.user, "").want(t, http.StatusOK)
	if !strings.Contains(r.raw, `"messages":[]`) {
		t.Fatalf("empty room: %s", r.raw)
	}
	// A failing store is a 500 that does not leak its error.
	r = f.do(t, "GET", "/api/rooms/broken/messages", f.user, "").want(t, http.StatusInternalServerError)
	if strings.Contains(r.raw, "fire") {
		t.Fatalf("500 leaks the internal error: %s", r.raw)
	}
}

func TestBadParams(t *testing.T) {
	f := setup(t)
	tests := []struct{ path, want string }{
		{"/api/rooms/lobby/messages?limit=0", "limit"},
		{"/api/rooms/lobby/messages?limit=-3", "limit"},
		{"/api/rooms/lobby/messages?limit=ten", "limit"},
		{"/api/rooms/lobby/messages?limit=501", "maximum of 500"},
		{"/api/rooms/lobby/messages?after=17", "PARTITION:OFFSET"},
		{"/api/rooms/lobby/messages?after=a:1", "partition"},
		{"/api/rooms/lobby/messages?after=0:-1", "offset"},
		{"/api/rooms/lobby/messages?before=" + strings.Repeat("x", 200), "before"},
		{"/api/rooms/bad%20room/messages", "invalid room name"},
		{"/api/rooms/lobby/counters?after=", "after"},
		{"/api/leaderboard?limit=1001", "maximum of 1000"},
		{"/api/leaderboard?room=", "room"},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			r := f.do(t, "GET", tt.path, f.user, "").want(t, http.StatusBadRequest)
			if !strings.Contains(r.message(), tt.want) {
				t.Fatalf("error %q does not mention %q", r.message(), tt.want)
			}
		})
	}
	f.do(t, "GET", "/api/nothing", f.user, "").want(t, http.StatusNotFound)
}

func TestAfterWaitsForProjection(t *testing.T) {
	f := setup(t)
	// Already applied: answered at once.
	f.do(t, "GET", "/api/rooms/lobby/messages?after=0:17", f.user, "").want(t, http.StatusOK)

	// 0:20 is not applied yet (checkpoint 18): the request waits until the
	// projection moves past it.
	for len(f.hist.polled) > 0 {
		<-f.hist.polled
	}
	type result struct {
		res *http.Response
		err error
	}
	done := make(chan result, 1)
	go func() {
		req, _ := http.NewRequestWithContext(context.Background(), "GET", f.srv.URL+"/api/rooms/lobby/messages?after=0:20", nil)
		req.Header.Set("Authorization", "Bearer "+f.user)
		res, err := http.DefaultClient.Do(req)
		if err == nil {
			_, _ = io.Copy(io.Discard, res.Body)
			res.Body.Close()
		}
		done <- result{res, err}
	}()
	<-f.hist.polled // the handler has seen the old position
	select {
	case r := <-done:
		t.Fatalf("answered before the projection reached 0:20: %v %v", r.res, r.err)
	default:
	}
	f.hist.set(0, 21)
	r := <-done
	if r.err != nil || r.res.StatusCode != http.StatusOK {
		t.Fatalf("after waiting: %v %v", r.res, r.err)
	}
	if got := r.res.Header.Get(api.PositionHeader); got != "0:20,1:4" {
		t.Fatalf("position after waiting = %q, want 0:20,1:4", got)
	}
}

func TestAfterTimesOut(t *testing.T) {
	f := setup(t)
	start := time.Now()
	r := f.do(t, "GET", "/api/rooms/lobby/counters?after=0:3", f.user, "").want(t, http.StatusConflict)
	if time.Since(start) < 300*time.Millisecond {
		t.Fatalf("409 after %v, before AfterWait", time.Since(start))
	}
	if r.body["position"] != "0:2" || r.header.Get(api.PositionHeader) != "0:2" {
		t.Fatalf("409 position = %v / %q, want 0:2", r.body["position"], r.header.Get(api.PositionHeader))
	}
	// A partition the projection never applied waits too.
	f.do(t, "GET", "/api/leaderboard?after=5:0", f.user, "").want(t, http.StatusConflict)
}

func TestCountersAndLeaderboard(t *testing.T) {
	f := setup(t)
	r := f.do(t, "GET", "/api/rooms/lobby/counters?after=0:2", f.user, "").want(t, http.StatusOK)
	if r.body["room"] != "lobby" || r.body["total"] != float64(7) || r.body["members"] != float64(2) {
		t.Fatalf("counters = %s", r.raw)
	}
	if r.header.Get(api.PositionHeader) != "0:2" {
		t.Fatalf("counters position = %q", r.header.Get(api.PositionHeader))
	}
	r = f.do(t, "GET", "/api/leaderboard?limit=3", f.user, "").want(t, http.StatusOK)
	if !strings.Contains(r.raw, `"entries":[{"user":"alice","score":3}]`) {
		t.Fatalf("leaderboard = %s", r.raw)
	}
	if r.header.Get(api.PositionHeader) != "0:2" {
		t.Fatalf("leaderboard position = %q", r.header.Get(api.PositionHeader))
	}
	r = f.do(t, "GET", "/api/leaderboard?room=lobby", f.user, "").want(t, http.StatusOK)
	if !strings.Contains(r.raw, `"entries":[{"user":"lobby","score":10}]`) {
		t.Fatalf("room leaderboard = %s", r.raw)
	}
}

func TestWebhooks(t *testing.T) {
	f := setup(t)
	f.do(t, "POST", "/api/rooms/lobby/webhooks", f.user, `{"url":"https://example.com/hook","secret":"s3"}`).want(t, http.StatusForbidden)
	f.do(t, "GET", "/api/rooms/lobby/webhooks", f.user, "").want(t, http.StatusForbidden)
	f.do(t, "DELETE", "/api/rooms/lobby/webhooks/w1", f.user, "").want(t, http.StatusForbidden)
	if len(f.log.evs) != 0 {
		t.Fatalf("a non-admin appended %d events", len(f.log.evs))
	}
	r := f.do(t, "POST", "/api/rooms/lobby/webhooks", f.admin, `{"url":"https://example.com/hook","secret":"s3"}`).want(t, http.StatusCreated)
	id, _ := r.body["webhook_id"].(string)
	if id == "" || r.body["partition"] != float64(2) || r.body["offset"] != float64(0) {
		t.Fatalf("201 body = %s", r.raw)
	}
	ev, ok := f.log.evs[0].(*events.WebhookRegistered)
	if !ok || ev.WebhookID != id || ev.URL != "https://example.com/hook" || ev.User != "root" || ev.Room != "lobby" {
		t.Fatalf("appended %+v", f.log.evs[0])
	}
	if plain, err := f.keyring.Open(ev.Secret, id); err != nil || plain != "s3" || strings.Contains(ev.Secret, "s3") {
		t.Fatalf("appended secret %q: not s3 sealed (%q, %v)", ev.Secret, plain, err)
	}
	r = f.do(t, "GET", "/api/rooms/lobby/webhooks", f.admin, "").want(t, http.StatusOK)
	if r.raw != `{"webhooks":[{"id":"w1","url":"https://example.com/hook","created":1700}]}`+"\n" {
		t.Fatalf("list = %s", r.raw)
	}
	r = f.do(t, "DELETE", "/api/rooms/lobby/webhooks/w1", f.admin, "").want(t, http.StatusOK)
	if rm, ok := f.log.evs[1].(*events.WebhookRemoved); !ok || rm.WebhookID != "w1" || rm.Room != "lobby" || r.body["webhook_id"] != "w1" {
		t.Fatalf("remove appended %+v, answered %s", f.log.evs[1], r.raw)
	}
	f.log.evs = f.log.evs[:1]

	tests := []struct{ name, body, want string }{
		{"private", `{"url":"http://127.0.0.1/x","secret":"s"}`, "private"},
		{"shared address space", `{"url":"http://100.64.0.1/x","secret":"s"}`, "private"},
		{"no secret", `{"url":"https://example.com/x"}`, "secret is required"},
		{"scheme", `{"url":"ftp://example.com/x","secret":"s"}`, "scheme"},
		{"not json", `{"url":`, "request body"},
		{"empty", ``, "request body is empty"},
		{"unknown field", `{"url":"https://example.com","secret":"s","x":1}`, "unknown field"},
		{"two objects", `{"url":"https://example.com","secret":"s"}{}`, "one JSON object"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := f.do(t, "POST", "/api/rooms/lobby/webhooks", f.admin, tt.body).want(t, http.StatusBadRequest)
			if !strings.Contains(r.message(), tt.want) {
				t.Fatalf("error %q does not mention %q", r.message(), tt.want)
			}
		})
	}
	big := `{"url":"https://example.com/` + strings.Repeat("a", 2000) + `","secret":"s"}`
	f.do(t, "POST", "/api/rooms/lobby/webhooks", f.admin, big).want(t, http.StatusRequestEntityTooLarge)
	if len(f.log.evs) != 1 {
		t.Fatalf("%d events appended, want 1 (refused requests append nothing)", len(f.log.evs))
	}
}

func TestRebuild(t *testing.T) {
	f := setup(t)
	r := f.do(t, "POST", "/api/admin/rebuild/redis", f.admin, "").want(t, http.StatusAccepted)
	if r.body["rebuild_id"] != "rb-redis" || r.body["target"] != "redis" {
		t.Fatalf("202 body = %s", r.raw)
	}
	f.do(t, "POST", "/api/admin/rebuild/mysql", f.admin, "").want(t, http.StatusNotFound)
	f.rebuild.busy = true
	f.do(t, "POST", "/api/admin/rebuild/all", f.admin, "").want(t, http.StatusConflict)
	if strings.Join(f.rebuild.targets, ",") != "redis" {
		t.Fatalf("rebuilds started: %v", f.rebuild.targets)
	}
}

func TestReadyz(t *testing.T) {
	f := setup(t, func(c *api.Config) {
		c.Ready = append(c.Ready,
			api.Check{Name: "postgres", Check: func(context.Context) error { return errors.New("connection refused") }},
			api.Check{Name: "slow", Check: func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() }},
		)
		c.CheckTimeout = 50 * time.Millisecond
	})
	r := f.do(t, "GET", "/readyz", "", "").want(t, http.StatusServiceUnavailable)
	down, _ := r.body["down"].([]any)
	if len(down) != 2 || down[0] != "postgres" || down[1] != "slow" {
		t.Fatalf("readyz = %s, want postgres and slow down", r.raw)
	}
	// Unauthenticated callers get names, never the errors behind them.
	if strings.Contains(r.raw, "refused") || strings.Contains(r.raw, "deadline") {
		t.Fatalf("readyz shows internal error text: %s", r.raw)
	}
	f.do(t, "GET", "/healthz", "", "").want(t, http.StatusOK)
}

func TestNotConfigured(t *testing.T) {
	keys, _ := auth.NewKeys("k")
	h, err := api.New(api.Config{Keys: keys})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	f := &fixture{srv: srv, keys: keys}
	tok, _ := keys.Sign("alice", "", true, time.Hour)
	f.do(t, "GET", "/api/rooms/lobby/messages", tok, "").want(t, http.StatusNotImplemented)
	f.do(t, "POST", "/api/admin/rebuild/all", tok, "").want(t, http.StatusNotImplemented)

	if _, err := api.New(api.Config{}); err == nil || !strings.Contains(err.Error(), "Keys") {
		t.Fatalf("New without Keys = %v", err)
	}
}

func TestFormatParsePosition(t *testing.T) {
	if got := api.FormatPosition(map[int32]int64{3: 1, 0: 18, 1: 0, 2: 5}); got != "0:17,2:4,3:0" {
		t.Fatalf("FormatPosition = %q", got)
	}
	if got := api.FormatPosition(nil); got != "" {
		t.Fatalf("FormatPosition(nil) = %q", got)
	}
	p, err := api.ParsePosition("4:99")
	if err != nil || p != (events.Position{Partition: 4, Offset: 99}) {
		t.Fatalf("ParsePosition = %v, %v", p, err)
	}
	for _, bad := range []string{"", "1", "1:", ":1", "-1:0", "1:x", "99999999999:0"} {
		if _, err := api.ParsePosition(bad); err == nil {
			t.Fatalf("ParsePosition(%q) succeeded", bad)
		}
	}
}

func TestMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	f := setup(t, func(c *api.Config) { c.Registerer = reg })
	f.do(t, "GET", "/api/leaderboard", f.user, "").want(t, http.StatusOK)
	f.do(t, "GET", "/api/leaderboard", "", "").want(t, http.StatusUnauthorized)
	f.do(t, "GET", "/api/rooms/lobby/counters?after=0:9", f.user, "").want(t, http.StatusConflict)
	for _, tt := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"rtstack_api_requests_total", map[string]string{"route": "GET /api/leaderboard", "code": "200"}, 1},
		{"rtstack_api_requests_total", map[string]string{"route": "GET /api/leaderboard", "code": "401"}, 1},
		{"rtstack_api_requests_total", map[string]string{"route": "GET /api/rooms/{room}/counters", "code": "409"}, 1},
		{"rtstack_api_after_waits_total", map[string]string{"result": "timeout"}, 1},
	} {
		if got := counterValue(t, reg, tt.name, tt.labels); got != tt.want {
			t.Fatalf("%s%v = %v, want %v", tt.name, tt.labels, got, tt.want)
		}
	}
}

func counterValue(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metric:
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if labels[lp.GetName()] != lp.GetValue() {
					continue metric
				}
			}
			return m.GetCounter().GetValue()
		}
	}
	return 0
}

// versions serves the reads of one named version, "asof-1"; any other name
// is unknown.
type versions struct {
	redisReads
	*history
}

const knownVersion = "asof-1"

func (v versions) check(version string) error {
	if version != knownVersion {
		return fmt.Errorf("version %q: %w", version, view.ErrUnknownVersion)
	}
	return nil
}

func (v versions) HistoryAt(_ context.Context, version, room string, _ int, _ string) ([]view.Message, error) {
	return []view.Message{{MessageID: "then", Room: room}}, v.check(version)
}

func (v versions) CountersAt(_ context.Context, version, room string) (view.Counters, error) {
	return view.Counters{Room: room, Total: 1, PerMinute: []view.MinuteCount{}}, v.check(version)
}

func (v versions) LeaderboardAt(_ context.Context, version string, _ int) ([]view.ScoreEntry, error) {
	return []view.ScoreEntry{{User: "then", Score: 1}}, v.check(version)
}

func (v versions) RoomLeaderboardAt(_ context.Context, version, room string, _ int) ([]view.ScoreEntry, error) {
	return []view.ScoreEntry{{User: "then-" + room, Score: 1}}, v.check(version)
}

// TestVersionParam: ?version=NAME reads that version on history, counters
// and both leaderboards (no position header: a version's content is
// fixed); an unknown version is 404 unknown_version; an empty name, or
// ?after= with it, is 400; a reader without versions answers 501.
func TestVersionParam(t *testing.T) {
	var vs versions
	f := setup(t, func(c *api.Config) {
		vs = versions{redisReads: c.Counters.(redisReads), history: c.History.(*history)}
		c.History, c.Counters, c.Leaderboard = vs, vs, vs
		c.HistoryPosition, c.RedisPosition = vs.history.position, vs.redisReads.position
	})
	for path, want := range map[string]string{
		"/api/rooms/lobby/messages": `"message_id":"then"`,
		"/api/rooms/lobby/counters": `"total":1`,
		"/api/leaderboard":          `"user":"then"`,
		"/api/leaderboard?room=x":   `"user":"then-x"`,
	} {
		sep := "?"
		if strings.Contains(path, "?") {
			sep = "&"
		}
		r := f.do(t, "GET", path+sep+"version="+knownVersion, f.user, "").want(t, http.StatusOK)
		if !strings.Contains(r.raw, want) {
			t.Errorf("%s at %s = %s, want %s", path, knownVersion, r.raw, want)
		}
		if h := r.header.Get(api.PositionHeader); h != "" {
			t.Errorf("%s at a version carries the active position %q", path, h)
		}
		r = f.do(t, "GET", path+sep+"version=nope", f.user, "").want(t, http.StatusNotFound)
		if r.code() != clienterr.UnknownVersion {
			t.Errorf("%s at an unknown version: code %q, want %s", path, r.code(), clienterr.UnknownVersion)
		}
		f.do(t, "GET", path+sep+"version=", f.user, "").want(t, http.StatusBadRequest)
		f.do(t, "GET", path+sep+"version="+knownVersion+"&after=0:1", f.user, "").want(t, http.StatusBadRequest)
	}
	// Without a version the active one answers, with its position.
	r := f.do(t, "GET", "/api/rooms/lobby/counters", f.user, "").want(t, http.StatusOK)
	if r.body["total"] != float64(7) || r.header.Get(api.PositionHeader) == "" {
		t.Errorf("active counters = %s, position %q", r.raw, r.header.Get(api.PositionHeader))
	}
	plain := setup(t)
	r = plain.do(t, "GET", "/api/rooms/lobby/counters?version="+knownVersion, plain.user, "").want(t, http.StatusNotImplemented)
	if r.code() != clienterr.NotConfigured {
		t.Errorf("counters at a version without versions: code %q", r.code())
	}
}
