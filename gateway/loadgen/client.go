package loadgen

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

const (
	joinID    = "join" // the client_id of each client's join, answered by an ack
	writeWait = 10 * time.Second
)

// client is one connection. Its reader goroutine owns ws's reads; its
// sender goroutine (senders only) owns ws's writes once joined.
type client struct {
	r    *run
	i    int
	room int
	ws   *websocket.Conn
	dead chan struct{} // closed when the reader ended

	mu       sync.Mutex       // guards inflight
	inflight map[string]int64 // client_id → send time, of sends not yet answered
	window   chan struct{}    // closed loop: a slot per unanswered send
}

// connect dials and joins, waiting for the join's ack.
func (c *client) connect(ctx context.Context) error {
	u, err := url.Parse(c.r.cfg.URL)
	if err != nil {
		return fmt.Errorf("url: %w", err)
	}
	if tf := c.r.cfg.Token; tf != nil {
		tok, err := tf(c.r.cfg.user(c.i))
		if err != nil {
			return fmt.Errorf("token: %w", err)
		}
		q := u.Query()
		q.Set("token", tok)
		u.RawQuery = q.Encode()
	}
	ws, resp, err := websocket.DefaultDialer.DialContext(ctx, u.String(), nil)
	if resp != nil && resp.Body != nil {
		_ = resp.Body.Close()
	}
	if err != nil {
		if resp != nil {
			return fmt.Errorf("dial: %w (HTTP %s)", err, resp.Status)
		}
		return fmt.Errorf("dial: %w", err)
	}
	c.ws = ws
	join := fmt.Appendf(nil, `{"type":"join","room":%q,"client_id":%q}`, c.r.cfg.room(c.i), joinID)
	_ = ws.SetWriteDeadline(time.Now().Add(writeWait))
	if err := ws.WriteMessage(websocket.TextMessage, join); err != nil {
		_ = ws.Close()
		return fmt.Errorf("join: %w", err)
	}
	if d, ok := ctx.Deadline(); ok {
		_ = ws.SetReadDeadline(d)
	}
	defer func() { _ = ws.SetReadDeadline(time.Time{}) }()
	for {
		_, data, err := ws.ReadMessage()
		if err != nil {
			_ = ws.Close()
			return fmt.Errorf("join: %w", err)
		}
		var joinErr error
		joined := false
		forEachObject(data, func(obj []byte) {
			if id, ok := ackClientID(obj); ok && id == joinID {
				joined = true
			} else if e, ok := parseError(obj); ok && e.Ref != nil && *e.Ref == joinID {
				joinErr = fmt.Errorf("join refused: %s", e.Code)
			}
		})
		if joinErr != nil {
			_ = ws.Close()
			return joinErr
		}
		if joined {
			return nil
		}
	}
}

// read handles every frame until the connection ends.
func (c *client) read() {
	defer close(c.dead)
	var (
		buf   bytes.Buffer
		deliv []int64 // µs, this frame's send→delivery latencies
		acks  []int64 // µs, this frame's send→ack latencies
	)
	st := c.r.counts
	for {
		_, rd, err := c.ws.NextReader()
		if err == nil {
			buf.Reset()
			_, err = buf.ReadFrom(rd)
		}
		if err != nil {
			if !c.r.closing.Load() {
				code := 0
				if ce := (*websocket.CloseError)(nil); errors.As(err, &ce) {
					code = ce.Code
				}
				st.addDisconnect(code)
			}
			return
		}
		now := c.r.clock()
		deliv, acks = deliv[:0], acks[:0]
		forEachObject(buf.Bytes(), func(obj []byte) {
			if at, ok := messageSentAt(obj); ok {
				deliv = append(deliv, (now-at)/1e3)
			} else if id, ok := ackClientID(obj); ok {
				if at, ok := c.answered(id); ok {
					acks = append(acks, (now-at)/1e3)
					st.expected.Add(c.r.members[c.room].Load())
				}
			} else if e, ok := parseError(obj); ok {
				st.addError(e.Code)
				if e.Ref != nil {
					if _, ok := c.answered(*e.Ref); ok {
						st.refused.Add(1)
					}
				}
			}
		})
		if len(deliv) > 0 {
			st.delivered.Add(int64(len(deliv)))
			c.r.deliveryLat.record(c.i, deliv)
		}
		if len(acks) > 0 {
			st.acked.Add(int64(len(acks)))
			c.r.ackLat.record(c.i, acks)
		}
	}
}

// answered takes id out of the in-flight set and frees its window slot;
// ok is false for an id this client is not waiting for.
func (c *client) answered(id string) (sentAt int64, ok bool) {
	c.mu.Lock()
	sentAt, ok = c.inflight[id]
	delete(c.inflight, id)
	c.mu.Unlock()
	if ok && c.window != nil {
		<-c.window
	}
	return sentAt, ok
}

// send writes one message stamped sentAt; false when the connection is
// gone.
func (c *client) send(buf []byte, seq int, sentAt int64) ([]byte, bool) {
	id := strconv.Itoa(seq)
	c.mu.Lock()
	c.inflight[id] = sentAt
	c.mu.Unlock()
	buf = appendSend(buf[:0], c.r.cfg.room(c.i), id, sentAt, c.r.cfg.TextBytes)
	_ = c.ws.SetWriteDeadline(time.Now().Add(writeWait))
	if err := c.ws.WriteMessage(websocket.TextMessage, buf); err != nil {
		c.mu.Lock()
		delete(c.inflight, id)
		c.mu.Unlock()
		return buf, false
	}
	c.r.counts.sent.Add(1)
	return buf, true
}

// closedLoop sends whenever the window has a free slot, until stop.
func (c *client) closedLoop(stop <-chan struct{}) {
	var buf []byte
	for seq := 0; ; seq++ {
		select {
		case <-stop:
			return
		case <-c.dead:
			return
		case c.window <- struct{}{}:
		}
		var ok bool
		if buf, ok = c.send(buf, seq, c.r.clock()); !ok {
			return
		}
	}
}

// openLoop sends every interval from offset on, until stop. A sender that
// falls behind sends at once, and its latencies still count from the
// scheduled time, so a slow server cannot hide its queueing.
func (c *client) openLoop(stop <-chan struct{}, start int64, offset, interval time.Duration) {
	var buf []byte
	timer := time.NewTimer(0)
	defer timer.Stop()
	<-timer.C
	for seq := 0; ; seq++ {
		due := start + int64(offset) + int64(seq)*int64(interval)
		if wait := time.Duration(due - c.r.clock()); wait > 0 {
			timer.Reset(wait)
			select {
			case <-stop:
				return
			case <-c.dead:
				return
			case <-timer.C:
			}
		} else {
			select {
			case <-stop:
				return
			case <-c.dead:
				return
			default:
			}
		}
		var ok bool
		if buf, ok = c.send(buf, seq, due); !ok {
			return
		}
	}
}
