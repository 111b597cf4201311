//go:build uidemo

// The UI demo and browser test, behind the uidemo build tag (they need
// Chromium; the normal test run leaves them out).
//
//	go test -tags uidemo -run TestDemo -v ./web -args -demo.for=10m
//
// starts a broker, a gateway with Redis presence, the API over a small
// in-memory read model and the UI on -demo.addr (127.0.0.1:18080), with a
// scripted user "alice" chatting in room lobby, and prints the URL that
// opens it as "bob".
//
//	go test -tags uidemo -run TestBrowser -v ./web
//
// drives the UI in headless Chromium over the DevTools protocol against the
// same stack: send, edit, drop the connection and check the reconnect with
// since misses nothing and repeats nothing, then a screenshot.
package web_test

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/rtstack/rtstack/commands"
	"github.com/rtstack/rtstack/gateway"
	"github.com/rtstack/rtstack/gateway/api"
	"github.com/rtstack/rtstack/gateway/auth"
	"github.com/rtstack/rtstack/gateway/presence"
	"github.com/rtstack/rtstack/infra/kafka"
	"github.com/rtstack/rtstack/infra/kafka/kafkatest"
	"github.com/rtstack/rtstack/internal/testsvc"
	"github.com/rtstack/rtstack/projections/view"
	"github.com/rtstack/rtstack/web"
)

var (
	demoAddr = flag.String("demo.addr", "127.0.0.1:18080", "where the demo listens")
	demoFor  = flag.Duration("demo.for", time.Minute, "how long the demo runs")
)

// readModel is a toy projection fed by alice's WebSocket frames.
type readModel struct {
	mu    sync.Mutex
	msgs  []view.Message
	next  map[int32]int64
	score map[string]int64
}

func (m *readModel) apply(f map[string]any) {
	m.mu.Lock()
	defer m.mu.Unlock()
	p, o := int32(f["partition"].(float64)), int64(f["offset"].(float64))
	if o+1 > m.next[p] {
		m.next[p] = o + 1
	}
	id, _ := f["message_id"].(string)
	find := func() *view.Message {
		for i := range m.msgs {
			if m.msgs[i].MessageID == id {
				return &m.msgs[i]
			}
		}
		return nil
	}
	switch f["type"] {
	case "message":
		m.msgs = append(m.msgs, view.Message{MessageID: id, Room: f["room"].(string), User: f["user"].(string),
			Text: f["text"].(string), TS: int64(f["ts"].(float64)), Partition: p, Offset: o})
		m.score[f["user"].(string)]++
	case "edited":
		if x := find(); x != nil {
			x.Text, x.Edited = f["text"].(string), true
		}
	case "deleted":
		if x := find(); x != nil {
			x.Text, x.Deleted = "", true
		}
	case "reaction":
		if x := find(); x != nil {
			if x.Reactions == nil {
				x.Reactions = map[string][]string{}
			}
			x.Reactions[f["emoji"].(string)] = append(x.Reactions[f["emoji"].(string)], f["user"].(string))
		}
	}
}

func (m *readModel) History(_ context.Context, room string, limit int, _ string) ([]view.Message, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []view.Message
	for _, x := range m.msgs {
		if x.Room == room {
			out = append(out, x)
		}
	}
	if len(out) > limit {
		out = out[len(out)-limit:]
	}
	return out, nil
}

func (m *readModel) Checkpoints(context.Context) (map[int32]int64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := map[int32]int64{}
	for k, v := range m.next {
		out[k] = v
	}
	return out, nil
}

func (m *readModel) Leaderboard(_ context.Context, n int) ([]view.ScoreEntry, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []view.ScoreEntry
	for u, s := range m.score {
		out = append(out, view.ScoreEntry{User: u, Score: s})
	}
	slices.SortFunc(out, func(a, b view.ScoreEntry) int { return int(b.Score - a.Score) })
	return out[:min(n, len(out))], nil
}

func (m *readModel) Counters(_ context.Context, room string) (view.Counters, error) {
	return view.Counters{Room: room}, nil
}

func TestDemo(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), *demoFor)
	defer cancel()
	ln, err := net.Listen("tcp", *demoAddr)
	if err != nil {
		t.Fatal(err)
	}
	url := startDemo(t, ctx, ln)
	fmt.Printf("DEMO %s\n", url)
	<-ctx.Done()
}

// startDemo serves the demo on ln until ctx ends and returns the URL that
// signs in as bob and opens room lobby. alice chats there: a few messages,
// an edit, a reaction, a deletion, then "live message N" every 2s.
func startDemo(t *testing.T, ctx context.Context, ln net.Listener) string {
	t.Helper()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	addr := kafkatest.Broker(t, "").Addr()
	kafkatest.Topic(t, addr, kafka.DefaultTopic, 3)
	codec := kafkatest.Codec(t)
	keys, _ := auth.NewKeys("dev")
	cl := kafkatest.Client(t, addr)
	cmds, err := commands.NewHandler(commands.Config{Log: kafka.NewLog(cl, codec, kafka.DefaultTopic), AllowPrivateWebhooks: true})
	if err != nil {
		t.Fatal(err)
	}
	rdb, prefix := testsvc.Redis(t)
	tracker, err := presence.New(presence.Config{Redis: rdb, Prefix: prefix, GatewayID: "demo", Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	rm := &readModel{next: map[int32]int64{}, score: map[string]int64{}}
	gw, err := gateway.New(gateway.Config{Kafka: kafka.ClientConfig{Brokers: []string{addr}}, Codec: codec, Commands: cmds, Keys: keys,
		Presence: tracker, Boards: rm, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	apiH, err := api.New(api.Config{Keys: keys, History: rm, Counters: rm, Leaderboard: rm, Webhooks: cmds, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/ws", gw)
	mux.Handle("/api/", apiH)
	mux.Handle("/", web.Handler())
	hs := &http.Server{Handler: mux}
	go func() { _ = hs.Serve(ln) }()
	t.Cleanup(func() { _ = hs.Close() })
	base := "http://" + ln.Addr().String()
	go func() { _ = gw.Run(ctx) }()
	go func() {
		_ = tracker.Run(ctx, gw.BroadcastPresence,
			presence.Deliver(gw.DeliverToUser),
			presence.Welcome(func(room, user string, users []string) {
				b, _ := json.Marshal(map[string]any{"type": "presence", "room": room, "users": users})
				gw.DeliverToUser(user, b)
			}))
	}()

	alice, _ := keys.Sign("alice", "Alice", false, time.Hour)
	bob, _ := keys.Sign("bob", "Bob", false, time.Hour)

	var ws *websocket.Conn
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		ws, _, err = websocket.DefaultDialer.DialContext(ctx, "ws"+strings.TrimPrefix(base, "http")+"/ws?token="+alice, nil)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() { _ = ws.Close() })
	acks := make(chan map[string]any, 100)
	go func() {
		for {
			_, b, err := ws.ReadMessage()
			if err != nil {
				return
			}
			for _, line := range splitLines(b) {
				var f map[string]any
				if json.Unmarshal(line, &f) != nil {
					continue
				}
				if f["type"] == "ack" {
					acks <- f
				}
				if _, ok := f["offset"].(float64); ok && f["type"] != "ack" {
					rm.apply(f)
				}
			}
		}
	}()
	send := func(v map[string]any) map[string]any {
		b, _ := json.Marshal(v)
		if err := ws.WriteMessage(websocket.TextMessage, b); err != nil {
			return nil
		}
		if v["type"] != "send" {
			return nil
		}
		select {
		case a := <-acks:
			return a
		case <-time.After(10 * time.Second):
			return nil
		}
	}
	time.Sleep(2 * time.Second) // let the gateway start tailing
	send(map[string]any{"type": "join", "room": "lobby"})
	time.Sleep(300 * time.Millisecond)
	send(map[string]any{"type": "send", "room": "lobby", "text": "Hello from the log!", "client_id": "a1"})
	a2 := send(map[string]any{"type": "send", "room": "lobby", "text": "Every message shows its partition:offset.", "client_id": "a2"})
	send(map[string]any{"type": "send", "room": "lobby", "text": "@bob this one mentions you", "client_id": "a3"})
	a4 := send(map[string]any{"type": "send", "room": "lobby", "text": "typo here", "client_id": "a4"})
	send(map[string]any{"type": "edit", "room": "lobby", "message_id": a4["message_id"], "text": "fixed the typo"})
	send(map[string]any{"type": "react", "room": "lobby", "message_id": a2["message_id"], "emoji": "👍"})
	a5 := send(map[string]any{"type": "send", "room": "lobby", "text": "this will be deleted", "client_id": "a5"})
	send(map[string]any{"type": "delete", "room": "lobby", "message_id": a5["message_id"]})
	go func() { // stops with ctx
		for i := 0; ctx.Err() == nil; i++ {
			select {
			case <-ctx.Done():
			case <-time.After(2 * time.Second):
				send(map[string]any{"type": "send", "room": "lobby", "text": fmt.Sprintf("live message %d", i), "client_id": fmt.Sprint("live", i)})
			}
		}
	}()
	return base + "/#token=" + bob + "&room=lobby"
}

func splitLines(b []byte) [][]byte {
	var out [][]byte
	for len(b) > 0 {
		i := 0
		for i < len(b) && b[i] != '\n' {
			i++
		}
		out = append(out, b[:i])
		if i == len(b) {
			break
		}
		b = b[i+1:]
	}
	return out
}
