package gateway_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/rtstack/rtstack/commands"
	"github.com/rtstack/rtstack/events"
	"github.com/rtstack/rtstack/gateway"
	"github.com/rtstack/rtstack/gateway/auth"
	"github.com/rtstack/rtstack/infra/kafka"
	"github.com/rtstack/rtstack/infra/kafka/kafkatest"
	"github.com/rtstack/rtstack/internal/testsvc"
	"github.com/rtstack/rtstack/schemas"
)

const (
	topic   = kafka.DefaultTopic
	waitFor = 20 * time.Second
)

// stack is an embedded broker with the log topic, and the command side a
// gateway appends through.
type stack struct {
	addr    string
	codec   *schemas.Codec
	keys    *auth.Keys
	cl      *kgo.Client
	authors *memAuthors
	cmds    *commands.Handler
}

type stackOpts struct {
	partitions      int32
	addr            string // broker address: set to reuse one after a restart
	deliveryTimeout time.Duration
	outcomes        commands.Outcomes
}

func newStack(t testing.TB, o stackOpts) *stack {
	t.Helper()
	testsvc.Integration(t)
	if o.partitions == 0 {
		o.partitions = 3
	}
	if o.deliveryTimeout == 0 {
		o.deliveryTimeout = 5 * time.Second
	}
	addr := o.addr
	if addr == "" {
		addr = kafkatest.Broker(t, "").Addr()
	}
	kafkatest.Topic(t, addr, topic, o.partitions)
	st := &stack{addr: addr, codec: kafkatest.Codec(t), authors: &memAuthors{m: map[string]string{}}}
	var err error
	if st.keys, err = auth.NewKeys("test-secret"); err != nil {
		t.Fatal(err)
	}
	st.cl, err = kafka.NewClient(kafka.ClientConfig{Brokers: []string{addr}, DeliveryTimeout: o.deliveryTimeout})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.cl.Close)
	st.cmds, err = commands.NewHandler(commands.Config{
		Log: kafka.NewLog(st.cl, st.codec, topic), Authors: st.authors, Outcomes: o.outcomes,
	})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// gw is a running gateway behind a real HTTP server.
type gw struct {
	srv *gateway.Server
	hs  *httptest.Server
	st  *stack
}

func (st *stack) gateway(t testing.TB, mutate func(*gateway.Config)) *gw {
	t.Helper()
	return st.gatewayOn(t, mutate, false)
}

// gatewayOn starts a gateway; with smallBuffers the first socket it accepts
// gets a tiny kernel send buffer, so a client that stops reading backs up
// into the gateway's queue quickly instead of into megabytes of kernel
// memory.
func (st *stack) gatewayOn(t testing.TB, mutate func(*gateway.Config), smallBuffers bool) *gw {
	t.Helper()
	cfg := gateway.Config{
		Kafka:     kafka.ClientConfig{Brokers: []string{st.addr}},
		Topic:     topic,
		Codec:     st.codec,
		Commands:  st.cmds,
		Keys:      st.keys,
		RateLimit: 1e6,
		Burst:     1e6,
		// The tests flood on purpose; the limit tests set their own.
		UserRateLimit: 1e6,
		UserBurst:     1e6,
		Logger:        slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn})),
	}
	if mutate != nil {
		mutate(&cfg)
	}
	srv, err := gateway.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	runErr := make(chan error, 1)
	go func() { runErr <- srv.Run(ctx) }()
	mux := http.NewServeMux()
	mux.Handle("GET /ws", srv)
	hs := httptest.NewUnstartedServer(mux)
	if smallBuffers {
		hs.Listener = smallBufListener{hs.Listener, &sync.Once{}}
	}
	hs.Start()
	t.Cleanup(func() {
		sctx, scancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer scancel()
		if err := srv.Shutdown(sctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		cancel()
		if err := <-runErr; err != nil {
			t.Errorf("run: %v", err)
		}
		hs.Close()
	})
	return &gw{srv: srv, hs: hs, st: st}
}

func (g *gw) url(token string) string {
	return "ws" + strings.TrimPrefix(g.hs.URL, "http") + "/ws?token=" + token
}

func (g *gw) token(t testing.TB, user string) string {
	t.Helper()
	tok, err := g.st.keys.Sign(user, "", false, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// testWriter sends logs to t.Log, so they show only for failing tests.
type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// frame is any server object, with the fields the tests look at.
type frame struct {
	Type      string   `json:"type"`
	Room      string   `json:"room"`
	MessageID string   `json:"message_id"`
	User      string   `json:"user"`
	Text      string   `json:"text"`
	Emoji     string   `json:"emoji"`
	Removed   bool     `json:"removed"`
	ClientID  string   `json:"client_id"`
	Code      string   `json:"code"`
	Message   string   `json:"message"`
	Ref       *string  `json:"ref"`
	Reason    string   `json:"reason"`
	Users     []string `json:"users"`
	TS        int64    `json:"ts"`
	Partition int32    `json:"partition"`
	Offset    int64    `json:"offset"`
	Duplicate bool     `json:"duplicate"`
	InMS      int64    `json:"in_ms"`
	raw       string
	at        time.Time // when the client read it
}

func (f frame) pos() events.Position {
	return events.Position{Partition: f.Partition, Offset: f.Offset}
}

// client is a test WebSocket client; a goroutine reads every frame, splits
// it on \n and records the objects.
type client struct {
	t    testing.TB
	ws   *websocket.Conn
	user string

	wmu      sync.Mutex // guards writes to ws
	readOnce sync.Once

	mu     sync.Mutex // guards frames, closed, used
	frames []frame
	closed error        // the read error that ended the client
	used   map[int]bool // frames an expect returned
	notify chan struct{}
	done   chan struct{}
}

func (g *gw) dial(t testing.TB, user string) *client {
	t.Helper()
	return g.dialWith(t, user, websocket.DefaultDialer, true)
}

func (g *gw) dialWith(t testing.TB, user string, d *websocket.Dialer, read bool) *client {
	t.Helper()
	return g.dialToken(t, user, g.token(t, user), d, read)
}

// dialToken connects with token, which names user.
func (g *gw) dialToken(t testing.TB, user, token string, d *websocket.Dialer, read bool) *client {
	t.Helper()
	ws, resp, err := d.Dial(g.url(token), nil)
	if err != nil {
		t.Fatalf("dial as %s: %v (%v)", user, err, resp)
	}
	c := &client{t: t, ws: ws, user: user, notify: make(chan struct{}, 1), done: make(chan struct{}), used: map[int]bool{}}
	t.Cleanup(func() {
		_ = ws.Close()
		c.startReading() // a no-op if reading; ends at once on the closed socket
		<-c.done
	})
	if read {
		c.startReading()
	}
	return c
}

// startReading starts the client's reader once.
func (c *client) startReading() {
	c.readOnce.Do(func() { go c.readLoop() })
}

func (c *client) readLoop() {
	defer close(c.done)
	for {
		_, data, err := c.ws.ReadMessage()
		c.mu.Lock()
		if err != nil {
			c.closed = err
			c.mu.Unlock()
			c.wake()
			return
		}
		for _, line := range bytes.Split(data, []byte{'\n'}) {
			var f frame
			if err := json.Unmarshal(line, &f); err != nil {
				c.closed = fmt.Errorf("server sent a line that is not JSON: %q: %w", line, err)
				c.mu.Unlock()
				c.wake()
				return
			}
			f.raw, f.at = string(line), time.Now()
			c.frames = append(c.frames, f)
		}
		c.mu.Unlock()
		c.wake()
	}
}

func (c *client) wake() {
	select {
	case c.notify <- struct{}{}:
	default:
	}
}

func (c *client) send(v any) {
	c.t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		c.t.Fatal(err)
	}
	c.sendRaw(b)
}

func (c *client) sendRaw(b []byte) {
	c.t.Helper()
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if err := c.ws.WriteMessage(websocket.TextMessage, b); err != nil {
		c.t.Fatalf("%s: write: %v", c.user, err)
	}
}

// await waits until cond holds over all frames received so far.
func (c *client) await(what string, cond func(fs []frame) bool) []frame {
	c.t.Helper()
	deadline := time.After(waitFor)
	for {
		c.mu.Lock()
		fs := append([]frame(nil), c.frames...)
		closed := c.closed
		c.mu.Unlock()
		if cond(fs) {
			return fs
		}
		if closed != nil {
			c.t.Fatalf("%s: waiting for %s: connection ended: %v (last frames: %s)", c.user, what, closed, tail(fs))
		}
		select {
		case <-c.notify:
		case <-deadline:
			c.t.Fatalf("%s: timed out waiting for %s (last frames: %s)", c.user, what, tail(fs))
		}
	}
}

func tail(fs []frame) string {
	var b strings.Builder
	for _, f := range fs[max(0, len(fs)-5):] {
		raw := f.raw
		if len(raw) > 300 {
			raw = raw[:300] + "…"
		}
		b.WriteString(raw + " ")
	}
	return b.String()
}

// expect returns the first frame matching pred that no earlier expect
// returned.
func (c *client) expect(what string, pred func(f frame) bool) frame {
	c.t.Helper()
	var got frame
	c.await(what, func(fs []frame) bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		for i := range fs {
			if !c.used[i] && pred(fs[i]) {
				got = fs[i]
				c.used[i] = true
				return true
			}
		}
		return false
	})
	return got
}

func (c *client) expectType(typ string) frame {
	c.t.Helper()
	return c.expect(typ, func(f frame) bool { return f.Type == typ })
}

func (c *client) expectError(code string) frame {
	c.t.Helper()
	f := c.expect("error "+code, func(f frame) bool { return f.Type == "error" })
	if f.Code != code {
		c.t.Fatalf("%s: got error %s (%s), want %s", c.user, f.Code, f.Message, code)
	}
	return f
}

// of returns the frames of the given types, in arrival order.
func of(fs []frame, types ...string) []frame {
	var out []frame
	for _, f := range fs {
		for _, t := range types {
			if f.Type == t {
				out = append(out, f)
			}
		}
	}
	return out
}

// messages waits for n message frames of room and returns them.
func (c *client) messages(room string, n int) []frame {
	c.t.Helper()
	var out []frame
	c.await(fmt.Sprintf("%d messages in %s", n, room), func(fs []frame) bool {
		out = out[:0]
		for _, f := range fs {
			if f.Type == "message" && f.Room == room {
				out = append(out, f)
			}
		}
		return len(out) >= n
	})
	return out
}

// closeCode waits for the connection to end and returns its close code.
func (c *client) closeCode() int {
	c.t.Helper()
	return c.awaitClose().Code
}

// awaitClose waits for the connection to end and returns its close frame.
func (c *client) awaitClose() *websocket.CloseError {
	c.t.Helper()
	select {
	case <-c.done:
	case <-time.After(waitFor):
		c.t.Fatalf("%s: connection not closed", c.user)
	}
	var ce *websocket.CloseError
	if !errors.As(c.closed, &ce) {
		c.t.Fatalf("%s: ended without a close frame: %v", c.user, c.closed)
	}
	return ce
}

// join joins room and waits for the client's own joined frame.
func (c *client) join(room string) frame {
	c.t.Helper()
	c.send(map[string]any{"type": "join", "room": room})
	return c.expect("joined "+room, func(f frame) bool { return f.Type == "joined" && f.Room == room && f.User == c.user })
}

// say sends text and waits for the ack.
func (c *client) say(room, clientID, text string) frame {
	c.t.Helper()
	c.send(map[string]any{"type": "send", "room": room, "client_id": clientID, "text": text})
	return c.expect("ack "+clientID, func(f frame) bool {
		if f.Type == "error" && f.Ref != nil && *f.Ref == clientID {
			c.t.Fatalf("%s: send %s: error %s: %s", c.user, clientID, f.Code, f.Message)
		}
		return f.Type == "ack" && f.ClientID == clientID
	})
}

// memAuthors is the in-test read model of who wrote what.
type memAuthors struct {
	mu sync.Mutex // guards m
	m  map[string]string
}

func (a *memAuthors) add(room, id, user string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.m[room+"\x00"+id] = user
}

func (a *memAuthors) Author(_ context.Context, room, id string) (string, bool, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	u, ok := a.m[room+"\x00"+id]
	return u, ok, nil
}

// memOutcomes is a tiny in-test Outcomes.
type memOutcomes struct {
	mu sync.Mutex // guards m
	m  map[string]events.Position
}

func (o *memOutcomes) Get(_ context.Context, key string) (events.Position, bool, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	p, ok := o.m[key]
	return p, ok, nil
}

func (o *memOutcomes) Put(_ context.Context, key string, pos events.Position) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.m[key] = pos
	return nil
}

// smallBufListener gives the first connection it accepts a tiny kernel
// send buffer.
type smallBufListener struct {
	net.Listener
	once *sync.Once
}

func (l smallBufListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.once.Do(func() { _ = c.(*net.TCPConn).SetWriteBuffer(4096) })
	}
	return c, err
}

// smallBufferDialer dials with a tiny socket receive buffer, so a client
// that stops reading backs up into the server quickly.
func smallBufferDialer() *websocket.Dialer {
	d := *websocket.DefaultDialer
	d.NetDialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		var nd net.Dialer
		c, err := nd.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		_ = c.(*net.TCPConn).SetReadBuffer(4096)
		return c, nil
	}
	return &d
}

// sameOrder fails unless every list has the same message ids in the same
// order with strictly increasing offsets.
func sameOrder(t testing.TB, lists map[string][]frame) {
	t.Helper()
	var ref []string
	var refName string
	for name, fs := range lists {
		ids := make([]string, len(fs))
		for i, f := range fs {
			ids[i] = f.MessageID
			if i > 0 && f.Offset <= fs[i-1].Offset {
				t.Fatalf("%s: offset %d after %d: not log order", name, f.Offset, fs[i-1].Offset)
			}
		}
		if ref == nil {
			ref, refName = ids, name
			continue
		}
		if len(ids) != len(ref) {
			t.Fatalf("%s got %d messages, %s got %d", name, len(ids), refName, len(ref))
		}
		for i := range ids {
			if ids[i] != ref[i] {
				t.Fatalf("order differs at %d: %s has %s, %s has %s", i, name, ids[i], refName, ref[i])
			}
		}
	}
}
