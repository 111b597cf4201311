package gateway_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// rawBroadcast is the fanout baseline of the load benchmarks: a minimal
// gorilla/websocket broadcast server with no log, no auth and nothing but
// memory. It speaks just enough of the gateway's protocol for the same load
// generator to drive it: join (acked when it carries a client_id) and send
// (a message object of the gateway's shape to every member of the room,
// then an ack). Like the gateway, each connection has one writer that packs
// everything queued into one \n-separated frame, and a connection whose
// queue overflows is dropped.
type rawBroadcast struct {
	hs *httptest.Server

	mu     sync.Mutex                       // guards rooms and offset
	rooms  map[string]map[*rawConn]struct{} // members by room
	offset int64                            // the next message's position, one sequence for all rooms
}

const rawQueueLimit = 4096 // as the gateway's default SendQueue

type rawConn struct {
	ws   *websocket.Conn
	wake chan struct{} // capacity 1: the writer has something to do

	mu     sync.Mutex // guards queue and closed
	queue  [][]byte
	closed bool
}

func startRawBroadcast(t testing.TB) *rawBroadcast {
	t.Helper()
	rb := &rawBroadcast{rooms: map[string]map[*rawConn]struct{}{}}
	up := websocket.Upgrader{CheckOrigin: func(*http.Request) bool { return true }}
	rb.hs = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		rb.serve(&rawConn{ws: ws, wake: make(chan struct{}, 1)})
	}))
	t.Cleanup(rb.hs.Close)
	return rb
}

func (rb *rawBroadcast) url() string { return "ws" + strings.TrimPrefix(rb.hs.URL, "http") + "/ws" }

// serve is the connection's reader; its writer runs beside it until the
// reader ends.
func (rb *rawBroadcast) serve(c *rawConn) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.write()
	}()
	var joined []string
	defer func() {
		rb.mu.Lock()
		for _, room := range joined {
			delete(rb.rooms[room], c)
		}
		rb.mu.Unlock()
		c.close()
		<-done
		_ = c.ws.Close()
	}()
	for {
		_, data, err := c.ws.ReadMessage()
		if err != nil {
			return
		}
		var f struct {
			Type     string  `json:"type"`
			Room     string  `json:"room"`
			Text     string  `json:"text"`
			ClientID *string `json:"client_id"`
		}
		if json.Unmarshal(data, &f) != nil {
			continue
		}
		switch f.Type {
		case "join":
			rb.mu.Lock()
			if rb.rooms[f.Room] == nil {
				rb.rooms[f.Room] = map[*rawConn]struct{}{}
			}
			rb.rooms[f.Room][c] = struct{}{}
			rb.mu.Unlock()
			joined = append(joined, f.Room)
			if f.ClientID != nil {
				c.push(rawJSON(rawAck{Type: "ack", ClientID: *f.ClientID}))
			}
		case "send":
			rb.broadcast(c, f.Room, f.Text, f.ClientID)
		}
	}
}

// rawMessage has the field order of the gateway's message object, which
// the load generator's reader relies on.
type rawMessage struct {
	Type      string `json:"type"`
	Room      string `json:"room"`
	MessageID string `json:"message_id"`
	User      string `json:"user"`
	Text      string `json:"text"`
	ClientID  string `json:"client_id,omitempty"`
	TS        int64  `json:"ts"`
	Partition int32  `json:"partition"`
	Offset    int64  `json:"offset"`
}

type rawAck struct {
	Type      string `json:"type"`
	ClientID  string `json:"client_id"`
	MessageID string `json:"message_id,omitempty"`
	Partition int32  `json:"partition"`
	Offset    int64  `json:"offset"`
}

func (rb *rawBroadcast) broadcast(from *rawConn, room, text string, clientID *string) {
	rb.mu.Lock()
	off := rb.offset
	rb.offset++
	id := ""
	if clientID != nil {
		id = *clientID
	}
	msg := rawJSON(rawMessage{Type: "message", Room: room, MessageID: "m" + strconv.FormatInt(off, 10), User: "raw",
		Text: text, ClientID: id, TS: time.Now().UnixMilli(), Offset: off})
	for c := range rb.rooms[room] {
		c.push(msg)
	}
	rb.mu.Unlock()
	if clientID != nil {
		from.push(rawJSON(rawAck{Type: "ack", ClientID: id, MessageID: "m" + strconv.FormatInt(off, 10), Offset: off}))
	}
}

func (c *rawConn) push(frame []byte) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	if len(c.queue) >= rawQueueLimit {
		c.closed = true
		c.mu.Unlock()
		_ = c.ws.Close() // a slow client: the reader ends and cleans up
		return
	}
	c.queue = append(c.queue, frame)
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

func (c *rawConn) close() {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// write packs everything queued into one frame per write.
func (c *rawConn) write() {
	var batch [][]byte
	for range c.wake {
		c.mu.Lock()
		batch, c.queue = c.queue, batch[:0]
		closed := c.closed
		c.mu.Unlock()
		if closed {
			return
		}
		if len(batch) == 0 {
			continue
		}
		w, err := c.ws.NextWriter(websocket.TextMessage)
		if err != nil {
			return
		}
		for i, f := range batch {
			if i > 0 {
				_, _ = w.Write(newline)
			}
			_, _ = w.Write(f)
		}
		if w.Close() != nil {
			return
		}
		clear(batch)
	}
}

var newline = []byte{'\n'}

func rawJSON(v any) []byte {
	b, _ := json.Marshal(v)
	return b
}
