package gateway

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"golang.org/x/time/rate"

	"github.com/rtstack/rtstack/gateway/auth"
)

// conn is one WebSocket client. Its reader runs in ServeHTTP's goroutine
// (readLoop, session.go); its writer is the only goroutine writing data frames, and
// packs everything queued into one text frame with objects separated by \n.
type conn struct {
	s    *Server
	ws   *websocket.Conn
	id   string
	user string

	limiter     *rate.Limiter        // reader only
	userLimiter *rate.Limiter        // shared by the user's connections; nil: none
	rejected    int                  // reader only: frames refused in a row for rate
	typedAt     map[string]time.Time // reader only: room → last typing frame relayed (nil until the first)
	// written counts the frames the writer wrote: the progress pushWait
	// watches for SlowClientWait (a batch may take long on a slow link).
	written atomic.Uint64
	// pipeline holds the room actions between the reader and their answer.
	pipeline *pipeline

	wake chan struct{} // capacity 1: the writer has something to do
	done chan struct{} // closed when the writer has returned

	mu        sync.Mutex // guards the fields below
	space     *sync.Cond // on mu: signalled when the writer took or wrote a batch, or the conn closes
	queue     [][]byte   // frames waiting for the writer; never longer than cfg.SendQueue
	spare     [][]byte   // the writer's previous batch, reused as the next queue
	pending   int        // bytes queued or being written; over cfg.SendQueueBytes only by one frame alone
	closing   bool       // no more frames accepted
	batchMark uint64     // guarded by the hub's mu instead: the fanout batch that last queued here
	closeCode int
	closeText string
	flush     bool                // write what is queued before the close frame
	rooms     map[string]struct{} // rooms joined (membership for actions)
	boards    map[string]struct{} // board channels subscribed
	access    []string            // the token's rooms claim; nil: every room
	expiry    tokenExpiry         // the token's exp and its timer
}

func newConn(s *Server, ws *websocket.Conn, id string, claims auth.Claims) *conn {
	c := &conn{
		s: s, ws: ws, id: id, user: claims.User(), access: claims.Rooms,
		limiter:  rate.NewLimiter(s.cfg.RateLimit, s.cfg.Burst),
		wake:     make(chan struct{}, 1),
		done:     make(chan struct{}),
		queue:    make([][]byte, 0, 64),
		rooms:    map[string]struct{}{},
		boards:   map[string]struct{}{},
		pipeline: newPipeline(s.cfg.MaxInflight),
	}
	c.space = sync.NewCond(&c.mu)
	return c
}

func (c *conn) signal() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// push queues frame without blocking. A full queue closes the connection
// with CloseSlowClient: it never slows the sender (the fanout). It reports
// whether the frame was queued.
func (c *conn) push(frame []byte) bool {
	ok := c.enqueue(frame)
	if ok {
		c.signal()
	}
	return ok
}

// enqueue is push without waking the writer: the fanout queues a whole
// batch first and wakes each writer once, so it packs the batch into one
// frame instead of racing the fanout message by message.
func (c *conn) enqueue(frame []byte) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closing {
		return false
	}
	if !c.fitsLocked(len(frame)) {
		c.closeSlowLocked("slow client: send queue full")
		return false
	}
	c.appendLocked(frame)
	return true
}

// fitsLocked reports whether a frame of n bytes fits under both bounds of
// the queue; a frame alone always fits, so no frame is too big to send.
func (c *conn) fitsLocked(n int) bool {
	return len(c.queue) < c.s.cfg.SendQueue && (c.pending == 0 || c.pending+n <= c.s.cfg.SendQueueBytes)
}

func (c *conn) appendLocked(frame []byte) {
	c.queue = append(c.queue, frame)
	c.pending += len(frame)
}

func (c *conn) closeSlowLocked(text string) {
	c.closeLocked(CloseSlowClient, text, false)
	c.s.m.drops.WithLabelValues("slow_client").Inc()
	c.s.log.Info("slow client closed", "conn", c.id, "user", c.user, "reason", text)
}

// pushWait queues frame, waiting for room in the queue: the reader uses it
// for its own replies and recovery, where waiting slows only this client
// and holds at most SendQueueBytes for it. A queue the writer makes no
// progress on for SlowClientWait (the client stopped reading) closes the
// connection with CloseSlowClient.
func (c *conn) pushWait(frame []byte) bool {
	c.mu.Lock()
	var stall *time.Timer
	progress, since := c.written.Load(), time.Now()
	for !c.closing && !c.fitsLocked(len(frame)) {
		if stall == nil {
			stall = time.AfterFunc(c.s.cfg.SlowClientWait, c.wakeWaiters)
		}
		c.space.Wait()
		if now := c.written.Load(); now != progress {
			progress, since = now, time.Now()
		}
		left := c.s.cfg.SlowClientWait - time.Since(since)
		if left <= 0 {
			c.closeSlowLocked("slow client: stopped reading")
			break
		}
		stall.Reset(left)
	}
	if stall != nil {
		stall.Stop()
	}
	if c.closing {
		c.mu.Unlock()
		return false
	}
	c.appendLocked(frame)
	c.mu.Unlock()
	c.signal()
	return true
}

// wakeWaiters wakes pushWait so it can check how long it has stalled.
func (c *conn) wakeWaiters() {
	c.mu.Lock()
	c.space.Broadcast()
	c.mu.Unlock()
}

// close asks the writer to send a close frame with code and end the
// connection; with flush, what is already queued is written first. Only the
// first call counts.
func (c *conn) close(code int, text string, flush bool) {
	c.mu.Lock()
	c.closeLocked(code, text, flush)
	c.mu.Unlock()
}

func (c *conn) closeLocked(code int, text string, flush bool) {
	if c.closing {
		return
	}
	c.closing, c.closeCode, c.closeText, c.flush = true, code, text, flush
	c.space.Broadcast()
	c.signal()
}

// writeLoop is the connection's writer. It returns after the close frame
// (or a failed write) and always closes the socket, which ends the reader.
func (c *conn) writeLoop() {
	defer close(c.done)
	defer c.ws.Close()
	ping := time.NewTicker(c.s.cfg.PingInterval)
	defer ping.Stop()
	for {
		select {
		case <-c.wake:
		case <-ping.C:
			if err := c.ws.WriteControl(websocket.PingMessage, nil, time.Now().Add(c.s.cfg.WriteWait)); err != nil {
				c.abort()
				return
			}
			continue
		}
		c.mu.Lock()
		batch := c.queue
		c.queue, c.spare = c.spare[:0], nil
		closing, code, text, flush := c.closing, c.closeCode, c.closeText, c.flush
		c.space.Broadcast()
		c.mu.Unlock()

		var err error
		if !closing || flush {
			err = c.writeBatch(batch)
		}
		written := 0
		for _, f := range batch {
			written += len(f)
		}
		clear(batch) // drop references to shared frames
		c.mu.Lock()
		c.spare = batch[:0]
		c.pending -= written // counted until written: the batch is held until then
		c.space.Broadcast()
		c.mu.Unlock()
		if err != nil {
			c.abort()
			return
		}
		if closing {
			_ = c.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, text), time.Now().Add(c.s.cfg.WriteWait))
			return
		}
	}
}

// abort marks the connection closed after a failed write.
func (c *conn) abort() {
	c.mu.Lock()
	c.closeLocked(websocket.CloseAbnormalClosure, "", false)
	c.mu.Unlock()
}

// writeBatch writes frames packed into text frames of at most
// cfg.MaxPackBytes (a single larger object gets a frame of its own).
func (c *conn) writeBatch(batch [][]byte) error {
	for len(batch) > 0 {
		if err := c.ws.SetWriteDeadline(time.Now().Add(c.s.cfg.WriteWait)); err != nil {
			return err
		}
		w, err := c.ws.NextWriter(websocket.TextMessage)
		if err != nil {
			return err
		}
		size := 0
		n := 0
		for n < len(batch) && (n == 0 || size+1+len(batch[n]) <= c.s.cfg.MaxPackBytes) {
			if n > 0 {
				if _, err := w.Write(newline); err != nil {
					return err
				}
				size++
			}
			if _, err := w.Write(batch[n]); err != nil {
				return err
			}
			size += len(batch[n])
			n++
		}
		if err := w.Close(); err != nil {
			return err
		}
		c.s.m.frames.Inc()
		c.written.Add(1)
		batch = batch[n:]
	}
	return nil
}

var newline = []byte{'\n'}

// member reports whether the connection has joined room.
func (c *conn) member(room string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, ok := c.rooms[room]
	return ok
}

// roomCount is how many rooms the connection is in.
func (c *conn) roomCount() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.rooms)
}

func (c *conn) setMember(room string, in bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if in {
		c.rooms[room] = struct{}{}
	} else {
		delete(c.rooms, room)
	}
}

// memberships returns the rooms joined and board channels subscribed, and
// forgets them (the connection is ending).
func (c *conn) takeMemberships() (rooms, boards []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for r := range c.rooms {
		rooms = append(rooms, r)
	}
	for b := range c.boards {
		boards = append(boards, b)
	}
	c.rooms, c.boards = map[string]struct{}{}, map[string]struct{}{}
	return rooms, boards
}
