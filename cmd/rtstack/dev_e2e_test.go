package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/redis/go-redis/v9"

	"github.com/rtstack/rtstack/gateway/auth"
	"github.com/rtstack/rtstack/internal/testsvc"
	"github.com/rtstack/rtstack/tasks"
)

// devEnv is the environment of one rtstack dev under test: its own broker
// data, ports, database, Redis prefix and RabbitMQ queues.
type devEnv struct {
	env        []string
	dataDir    string
	httpAddr   string
	brokerAddr string
	keys       *auth.Keys
	rdb        *redis.Client
	redisPfx   string
	rabbitPfx  string
}

func newDevEnv(t *testing.T) *devEnv {
	t.Helper()
	pgURL := testsvc.Postgres(t)
	rdb, redisPfx := testsvc.Redis(t)
	testsvc.Rabbit(t)
	httpAddr, brokerAddr := testsvc.FreeAddr(t), testsvc.FreeAddr(t)
	rabbitPfx := fmt.Sprintf("e2e%d.", time.Now().UnixNano())
	t.Cleanup(func() { testsvc.DeleteQueues(rabbitPfx) })
	keys, err := auth.NewKeys("dev")
	if err != nil {
		t.Fatal(err)
	}
	dataDir := t.TempDir()
	return &devEnv{
		dataDir: dataDir,
		env: []string{
			"DATA_DIR=" + dataDir,
			"BROKER_ADDR=" + brokerAddr,
			"HTTP_ADDR=" + httpAddr,
			"POSTGRES_URL=" + pgURL,
			"REDIS_PREFIX=" + redisPfx,
			"RABBIT_PREFIX=" + rabbitPfx,
			"RETRY_DELAYS=100ms,200ms",
			"PARTITIONS=3",
		},
		httpAddr:   httpAddr,
		brokerAddr: brokerAddr,
		keys:       keys,
		rdb:        rdb,
		redisPfx:   redisPfx,
		rabbitPfx:  rabbitPfx,
	}
}

func (d *devEnv) start(t *testing.T) *proc {
	t.Helper()
	p := start(t, d.env, "dev")
	t.Cleanup(func() {
		if t.Failed() {
			// Stopped first: the buffer is written until the process ends.
			_ = p.cmd.Process.Kill()
			_ = p.cmd.Wait()
			t.Logf("rtstack dev output:\n%s", p.stderr)
		}
	})
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get("http://" + d.httpAddr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return p
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("rtstack dev not ready:\n%s", p.stderr)
	return nil
}

func (d *devEnv) token(t *testing.T, user string, admin bool) string {
	t.Helper()
	tok, err := d.keys.Sign(user, "", admin, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func (d *devEnv) run(t *testing.T, args ...string) string {
	t.Helper()
	cmd := exec.Command(binPath, args...)
	cmd.Env = append(os.Environ(), d.env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("rtstack %v: %v\n%s", args, err, stderr.String())
	}
	return strings.TrimSpace(string(out))
}

func (d *devEnv) get(t *testing.T, user, path string, into any) int {
	t.Helper()
	return d.getWith(t, d.token(t, user, false), path, into)
}

func (d *devEnv) getWith(t *testing.T, token, path string, into any) int {
	t.Helper()
	req, _ := http.NewRequest("GET", "http://"+d.httpAddr+path, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode == http.StatusOK && into != nil {
		if err := json.Unmarshal(body, into); err != nil {
			t.Fatalf("GET %s: %v: %s", path, err, body)
		}
	}
	return resp.StatusCode
}

// wsClient is a test WebSocket client; frames are split on '\n' as the
// contract says.
type wsClient struct {
	t       *testing.T
	c       *websocket.Conn
	frames  chan map[string]any
	pending []map[string]any // received, not yet awaited
	last    string           // position of the last message frame awaited
}

func (d *devEnv) dial(t *testing.T, user string) *wsClient {
	t.Helper()
	return d.dialWith(t, d.token(t, user, false))
}

func (d *devEnv) dialWith(t *testing.T, token string) *wsClient {
	t.Helper()
	c, resp, err := websocket.DefaultDialer.Dial("ws://"+d.httpAddr+"/ws?token="+token, nil)
	if err != nil {
		t.Fatalf("dial: %v (%v)", err, resp)
	}
	w := &wsClient{t: t, c: c, frames: make(chan map[string]any, 10000)}
	go func() {
		defer close(w.frames)
		for {
			_, data, err := c.ReadMessage()
			if err != nil {
				return
			}
			for _, line := range bytes.Split(data, []byte("\n")) {
				var m map[string]any
				if json.Unmarshal(line, &m) == nil {
					w.frames <- m
				}
			}
		}
	}()
	t.Cleanup(func() { _ = c.Close() })
	return w
}

func (w *wsClient) send(v map[string]any) {
	w.t.Helper()
	if err := w.c.WriteJSON(v); err != nil {
		w.t.Fatalf("send %v: %v", v, err)
	}
}

// await returns the first frame of type typ, in arrival order. Frames of
// other types are kept for later awaits: a message may arrive before its ack
// (fanout comes from the log, the ack from the append).
func (w *wsClient) await(typ string) map[string]any {
	w.t.Helper()
	for i, f := range w.pending {
		if f["type"] == typ {
			w.pending = append(w.pending[:i], w.pending[i+1:]...)
			return f
		}
	}
	timeout := time.After(20 * time.Second)
	for {
		select {
		case f, ok := <-w.frames:
			if !ok {
				w.t.Fatalf("connection closed while waiting for %s; pending %v", typ, w.pending)
			}
			if f["type"] == typ {
				if typ == "message" {
					w.last = pos(f)
				}
				return f
			}
			if f["type"] == "error" {
				w.t.Fatalf("error frame while waiting for %s: %v", typ, f)
			}
			w.pending = append(w.pending, f)
		case <-timeout:
			w.t.Fatalf("no %s frame; pending %v", typ, w.pending)
		}
	}
}

// awaitJoin waits for user's joined frame; others' are skipped.
func (w *wsClient) awaitJoin(user string) map[string]any {
	w.t.Helper()
	for {
		if j := w.await("joined"); j["user"] == user {
			return j
		}
	}
}

func pos(f map[string]any) string { return fmt.Sprintf("%v:%v", f["partition"], f["offset"]) }

// TestDevEndToEnd drives rtstack dev through its external surface only: a
// chat over WebSocket, history and counters over HTTP with read-your-writes,
// a kill -9 and restart with recovery, and a blue/green rebuild that leaves
// the digests unchanged.
func TestDevEndToEnd(t *testing.T) {
	d := newDevEnv(t)
	p := d.start(t)

	hooks := newHookTarget(t)
	var reg map[string]any
	// Webhooks are an admin's.
	admin := d.token(t, "alice", true)
	if code := d.postWith(t, admin, "/api/rooms/room-1/webhooks", map[string]string{"url": hooks.URL, "secret": "s3cret"}, &reg); code != http.StatusCreated {
		t.Fatalf("register webhook: HTTP %d %v", code, reg)
	}
	if code := d.postWith(t, admin, "/api/rooms/room-1/webhooks", map[string]string{"url": "ftp://example.com/x", "secret": "s"}, nil); code != http.StatusBadRequest {
		t.Fatalf("ftp webhook: HTTP %d, want 400", code)
	}

	// rtstack dev signs anyone in by name, with a token the rest accepts.
	code, login := devLogin(t, d.httpAddr, "dora")
	if code != http.StatusOK {
		t.Fatalf("dev login: HTTP %d %v", code, login)
	}
	if claims, err := d.keys.Verify(login["token"].(string)); err != nil || claims.User() != "dora" {
		t.Fatalf("dev login token: %v %+v", err, claims)
	}
	if cfg := pageConfig(t, d.httpAddr); cfg["dev_login"] != true {
		t.Fatalf("dev page config %v does not offer dev login", cfg)
	}

	alice, bob := d.dial(t, "alice"), d.dial(t, "bob")
	alice.send(map[string]any{"type": "join", "room": "room-1"})
	bob.send(map[string]any{"type": "join", "room": "room-1"})
	// bob's own join, not alice's: only a member is notified of a mention.
	alice.awaitJoin("alice")
	bob.awaitJoin("bob")

	alice.send(map[string]any{"type": "send", "room": "room-1", "text": "hello @bob", "client_id": "c1"})
	ack := alice.await("ack")
	mA, mB := alice.await("message"), bob.await("message")
	for _, m := range []map[string]any{mA, mB} {
		if m["text"] != "hello @bob" || m["user"] != "alice" || pos(m) != pos(ack) || m["message_id"] != ack["message_id"] {
			t.Fatalf("message frame %v does not match ack %v", m, ack)
		}
	}
	bob.await("notification") // the mention, delivered over the gateway by a worker
	first := hooks.await(t, 1)[0]
	if first.body["text"] != "hello @bob" || !tasks.VerifySignature("s3cret", first.raw, first.signature) {
		t.Fatalf("webhook delivery %+v: wrong body or signature", first)
	}

	// Resending the same client_id acknowledges the first append again.
	alice.send(map[string]any{"type": "send", "room": "room-1", "text": "hello @bob", "client_id": "c1"})
	if again := alice.await("ack"); pos(again) != pos(ack) {
		t.Fatalf("resend acked at %s, first at %s", pos(again), pos(ack))
	}

	// bob may not edit alice's message: authorship from the Postgres projection.
	bob.send(map[string]any{"type": "edit", "room": "room-1", "message_id": ack["message_id"], "text": "mine now"})
	if e := bob.await("error"); e["code"] != "not_author" {
		t.Fatalf("edit by bob: %v", e)
	}

	var hist struct{ Messages []map[string]any }
	if code := d.get(t, "bob", "/api/rooms/room-1/messages?after="+pos(ack), &hist); code != 200 {
		t.Fatalf("history: HTTP %d", code)
	}
	if len(hist.Messages) != 1 || hist.Messages[0]["text"] != "hello @bob" {
		t.Fatalf("history after %s: %v", pos(ack), hist.Messages)
	}
	var counters map[string]any
	if code := d.get(t, "bob", "/api/rooms/room-1/counters?after="+pos(ack), &counters); code != 200 || counters["total"] != float64(1) {
		t.Fatalf("counters: HTTP %d %v", code, counters)
	}

	// kill -9 and restart: the log keeps everything; a client recovers what
	// it missed with since.
	p.stop(t, syscall.SIGKILL)
	p = d.start(t)
	carol := d.dial(t, "carol")
	carol.send(map[string]any{"type": "join", "room": "room-1"})
	carol.await("joined")
	carol.send(map[string]any{"type": "send", "room": "room-1", "text": "after the crash", "client_id": "c2"})
	ack2 := carol.await("ack")
	if ack2["partition"] != ack["partition"] || ack2["offset"].(float64) <= ack["offset"].(float64) {
		t.Fatalf("offsets did not continue: %s then %s", pos(ack), pos(ack2))
	}
	alice = d.dial(t, "alice")
	alice.send(map[string]any{"type": "join", "room": "room-1", "since": map[string]any{"partition": ack["partition"], "offset": ack["offset"]}})
	var recovered []string
	for len(recovered) == 0 || recovered[len(recovered)-1] != "after the crash" {
		m := alice.await("message")
		recovered = append(recovered, m["text"].(string))
	}
	if len(recovered) != 1 {
		t.Fatalf("recovery delivered %v, want only what was missed", recovered)
	}

	// A blue/green rebuild while the system runs leaves the state unchanged.
	d.get(t, "bob", "/api/rooms/room-1/messages?after="+pos(ack2), nil)
	d.get(t, "bob", "/api/rooms/room-1/counters?after="+pos(ack2), nil)
	before := map[string]string{"postgres": d.run(t, "digest", "postgres"), "redis": d.run(t, "digest", "redis")}
	d.run(t, "rebuild", "all")
	if code := d.post(t, "bob", "/api/admin/rebuild/redis", nil, nil); code != http.StatusForbidden {
		t.Errorf("rebuild by a non-admin: HTTP %d, want 403", code)
	}
	if code := d.postWith(t, d.token(t, "ops", true), "/api/admin/rebuild/nope", nil, nil); code != http.StatusNotFound {
		t.Errorf("rebuild of an unknown projection: HTTP %d, want 404", code)
	}
	// An admin's rebuild runs in the gateway process and swaps the active
	// Redis version; the content stays the same.
	active := func() string { return d.rdb.Get(context.Background(), d.redisPfx+"active").Val() }
	was := active()
	if code := d.postWith(t, d.token(t, "ops", true), "/api/admin/rebuild/redis", nil, nil); code != http.StatusAccepted {
		t.Fatalf("admin rebuild: HTTP %d, want 202", code)
	}
	testsvc.Eventually(t, 30*time.Second, "the API's rebuild to swap the Redis version", func() bool { return active() != was })
	if got := d.run(t, "digest", "redis"); got != before["redis"] {
		t.Errorf("redis digest changed by the API's rebuild: %s → %s", before["redis"], got)
	}
	for target, want := range before {
		if got := d.run(t, "digest", target); got != want {
			t.Errorf("%s digest changed by a rebuild: %s → %s", target, want, got)
		}
	}
	if code := d.get(t, "bob", "/api/rooms/room-1/messages", &hist); code != 200 || len(hist.Messages) != 2 {
		t.Fatalf("history after rebuild: HTTP %d, %d messages", code, len(hist.Messages))
	}

	// Side effects never re-fire: after the crash and the rebuild, the
	// webhook has seen each message once. A last message is delivered too,
	// so the worker has had time to deliver anything it would re-fire.
	carol.send(map[string]any{"type": "send", "room": "room-1", "text": "last", "client_id": "c3"})
	carol.await("ack")
	got := hooks.await(t, 3)
	texts := []string{}
	ids := map[string]bool{}
	for _, h := range got {
		texts = append(texts, h.body["text"].(string))
		ids[h.delivery] = true
	}
	if strings.Join(texts, "|") != "hello @bob|after the crash|last" || len(ids) != 3 {
		t.Fatalf("webhook deliveries %v (%d ids), want each message once", texts, len(ids))
	}
	if out := d.run(t, "dlq", "list"); out != "" {
		t.Errorf("dlq list: %q, want empty", out)
	}

	// Membership is durable: alice's reconnect and second join appended no
	// second MemberJoined.
	joins := 0
	for _, l := range jsonLines(t, []byte(d.run(t, "log", "dump", "--room", "room-1"))) {
		if l["type"] == "MemberJoined" && l["event"].(map[string]any)["user"] == "alice" {
			joins++
		}
	}
	if joins != 1 {
		t.Errorf("%d MemberJoined events for alice, want 1", joins)
	}

	p.stop(t, syscall.SIGTERM)
	if !strings.Contains(p.stderr.String(), "shutting down") {
		t.Errorf("no orderly shutdown on SIGTERM:\n%s", p.stderr)
	}
}

// hookTarget is a local webhook receiver that records each delivery.
type hookTarget struct {
	*httptest.Server
	mu   sync.Mutex
	hits []hookHit
}

type hookHit struct {
	raw                 []byte
	body                map[string]any
	signature, delivery string
}

func newHookTarget(t *testing.T) *hookTarget {
	h := &hookTarget{}
	h.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		raw, _ := io.ReadAll(r.Body)
		var body map[string]any
		_ = json.Unmarshal(raw, &body)
		h.mu.Lock()
		h.hits = append(h.hits, hookHit{raw, body, r.Header.Get(tasks.HeaderSignature), r.Header.Get(tasks.HeaderDelivery)})
		h.mu.Unlock()
	}))
	t.Cleanup(h.Close)
	return h
}

// await waits until at least n deliveries arrived, then a moment more for
// any that should not, and returns them all.
func (h *hookTarget) await(t *testing.T, n int) []hookHit {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		h.mu.Lock()
		got := len(h.hits)
		h.mu.Unlock()
		if got >= n {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d webhook deliveries, want %d", got, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond)
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]hookHit(nil), h.hits...)
}

func (d *devEnv) post(t *testing.T, user, path string, body, into any) int {
	t.Helper()
	return d.postWith(t, d.token(t, user, false), path, body, into)
}

func (d *devEnv) postWith(t *testing.T, token, path string, body, into any) int {
	t.Helper()
	b, _ := json.Marshal(body)
	req, _ := http.NewRequest("POST", "http://"+d.httpAddr+path, bytes.NewReader(b))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if into != nil {
		_ = json.NewDecoder(resp.Body).Decode(into)
	}
	return resp.StatusCode
}

// devLogin posts name to /api/dev/login.
func devLogin(t *testing.T, addr, name string) (int, map[string]any) {
	t.Helper()
	b, _ := json.Marshal(map[string]string{"name": name})
	resp, err := http.Post("http://"+addr+"/api/dev/login", "application/json", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&body)
	return resp.StatusCode, body
}

// pageConfig is what the web page learns about the server.
func pageConfig(t *testing.T, addr string) map[string]any {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/config.json")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var cfg map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&cfg); err != nil {
		t.Fatal(err)
	}
	return cfg
}
