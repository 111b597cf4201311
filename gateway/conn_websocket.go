package gateway

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"golang.org/x/time/rate"

	"github.com/rtstack/rtstack/gateway/auth"
)

// conn is one WebSocket client. Its reader is the connection's one
// long-lived goroutine (readLoop, session.go). Its writer runs only while
// there is something to write (frames, a ping, the close): it packs
// everything queued into one text frame with objects separated by \n, and
// returns when the queue has stayed empty for writerLinger after frames
// (at once after a ping alone), so an idle connection holds no writer, no
// write buffer (pooled) and no queue, while a busy one keeps its writer
// and its grown stack between batches.
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

	done chan struct{} // closed when the last writer has closed the socket

	mu        sync.Mutex    // guards the fields below
	space     *sync.Cond    // on mu: signalled when the writer took or wrote a batch, or the conn closes
	queue     [][]byte      // frames waiting for the writer; never longer than cfg.SendQueue (nil when idle)
	spare     [][]byte      // the writer's previous batch, reused as the next queue while it runs
	pending   int           // bytes queued or being written; over cfg.SendQueueBytes only by one frame alone
	writing   bool          // a writer goroutine is running (or the socket is closed: no more start)
	parked    bool          // the writer waits on wake for more, up to writerLinger
	wake      chan struct{} // capacity 1; made the first time the writer parks
	pingDue   bool          // the ping timer fired: the writer sends a ping
	ping      *time.Timer
	closing   bool   // no more frames accepted
	batchMark uint64 // guarded by the hub's mu instead: the fanout batch that last queued here
	closeCode int
	closeText string
	flush     bool                // write what is queued before the close frame
	rooms     map[string]struct{} // rooms joined (membership for actions); nil until the first
	boards    map[string]struct{} // board channels subscribed; nil until the first
	access    []string            // the token's rooms claim; nil: every room
	expiry    tokenExpiry         // the token's exp and its timer
}

func newConn(s *Server, ws *websocket.Conn, id string, claims auth.Claims) *conn {
	c := &conn{
		s: s, ws: ws, id: id, user: claims.User(), access: claims.Rooms,
		limiter:  rate.NewLimiter(s.cfg.RateLimit, s.cfg.Burst),
		done:     make(chan struct{}),
		pipeline: newPipeline(s.cfg.MaxInflight),
	}
	c.space = sync.NewCond(&c.mu)
	return c
}

// startPings arms the ping timer: a timer, not a ticker in a goroutine, so
// between pings an idle connection runs nothing.
func (c *conn) startPings() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.closing {
		c.ping = time.AfterFunc(c.s.cfg.PingInterval, c.pingTick)
	}
}

// signal starts the writer if there is something for it to do.
func (c *conn) signal() {
	c.mu.Lock()
	c.signalLocked()
	c.mu.Unlock()
}

func (c *conn) signalLocked() {
	switch {
	case len(c.queue) == 0 && !c.closing && !c.pingDue:
	case c.parked:
		c.parked = false
		select {
		case c.wake <- struct{}{}:
		default:
		}
	case !c.writing:
		c.writing = true
		go c.writeLoop()
	}
}

// writerLinger is how long a writer that just wrote frames waits for the
// next batch before it ends. Under load batches come milliseconds apart:
// a writer started for each would cost a goroutine and the growth of its
// stack every time (13 % of the CPU at 1,000 members × 200 msg/s).
const writerLinger = 20 * time.Millisecond

// pingTick runs on the ping timer: it asks for a ping and, when no writer is
// running, becomes the writer in the timer's own goroutine.
func (c *conn) pingTick() {
	c.mu.Lock()
	if c.closing {
		c.mu.Unlock()
		return
	}
	c.pingDue = true
	c.ping.Reset(c.s.cfg.PingInterval)
	if c.writing {
		c.signalLocked() // wakes a parked writer
		c.mu.Unlock()
		return
	}
	c.writing = true
	c.mu.Unlock()
	c.writeLoop()
}

// push queues frame without blocking. A full queue closes the connection
// with CloseSlowClient: it never slows the sender (the fanout). It reports
// whether the frame was queued.
func (c *conn) push(frame []byte) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	ok := c.enqueueLocked(frame)
	if ok {
		c.signalLocked()
	}
	return ok
}

// enqueue is push without starting the writer: the fanout queues a whole
// batch first and signals each connection once, so its writer packs the
// batch into one frame instead of racing the fanout message by message.
func (c *conn) enqueue(frame []byte) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.enqueueLocked(frame)
}

func (c *conn) enqueueLocked(frame []byte) bool {
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
	defer c.mu.Unlock()
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
		return false
	}
	c.appendLocked(frame)
	c.signalLocked()
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
	if c.ping != nil {
		c.ping.Stop()
	}
	c.space.Broadcast()
	c.signalLocked()
}

// writerTask is what one round of the writer takes from the conn.
type writerTask struct {
	batch   [][]byte
	ping    bool
	closing bool
	code    int
	text    string
	flush   bool
}

// takeState is what take found for the writer.
type takeState int

const (
	takeWork takeState = iota // a task to do
	takePark                  // nothing yet: wait on wake (parked is set)
	takeEnd                   // nothing: the writer has ended (writing is false)
)

// take hands the writer what is queued. With nothing to do it parks the
// writer when mayPark, or else ends it, and then the idle connection keeps
// no queue.
func (c *conn) take(mayPark bool) (t writerTask, st takeState) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.queue) == 0 && !c.pingDue && !c.closing {
		if mayPark {
			if c.wake == nil {
				c.wake = make(chan struct{}, 1)
			}
			c.parked = true
			return t, takePark
		}
		c.writing, c.parked = false, false
		c.queue, c.spare = nil, nil
		return t, takeEnd
	}
	c.parked = false
	t = writerTask{batch: c.queue, ping: c.pingDue, closing: c.closing, code: c.closeCode, text: c.closeText, flush: c.flush}
	c.queue, c.spare, c.pingDue = c.spare[:0], nil, false
	c.space.Broadcast()
	return t, takeWork
}

// writeLoop is the connection's writer while there is work. It returns when
// the queue stayed empty (see writerLinger), after the close frame, or
// after a failed write; in the last two cases it closes the socket, which
// ends the reader, and no writer starts again (writing stays true).
func (c *conn) writeLoop() {
	var linger *time.Timer
	defer func() {
		if linger != nil {
			linger.Stop()
		}
	}()
	wrote := false // the last round wrote frames: wait for more before ending
	for {
		t, st := c.take(wrote)
		switch st {
		case takeEnd:
			return
		case takePark:
			if linger == nil {
				linger = time.NewTimer(writerLinger)
			} else {
				linger.Reset(writerLinger)
			}
			select {
			case <-c.wake:
			case <-linger.C:
				wrote = false // the next take ends the writer if nothing came
			}
			continue
		}
		wrote = len(t.batch) > 0
		if c.write(t) {
			return
		}
	}
}

// write does one writer task; it reports whether the writer is done (the
// close was written or a write failed), and then the socket is closed.
func (c *conn) write(t writerTask) (ended bool) {
	var err error
	if t.ping {
		err = c.ws.WriteControl(websocket.PingMessage, nil, time.Now().Add(c.s.cfg.WriteWait))
	}
	if err == nil && (!t.closing || t.flush) {
		err = c.writeBatch(t.batch)
	}
	written := 0
	for _, f := range t.batch {
		written += len(f)
	}
	clear(t.batch) // drop references to shared frames
	c.mu.Lock()
	c.spare = t.batch[:0]
	c.pending -= written // counted until written: the batch is held until then
	c.space.Broadcast()
	if err != nil {
		c.closeLocked(websocket.CloseAbnormalClosure, "", false)
	}
	c.mu.Unlock()
	if err == nil && t.closing {
		_ = c.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(t.code, t.text), time.Now().Add(c.s.cfg.WriteWait))
	}
	if err != nil || t.closing {
		_ = c.ws.Close()
		close(c.done)
		return true
	}
	return false
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
		if c.rooms == nil {
			c.rooms = map[string]struct{}{}
		}
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
	c.rooms, c.boards = nil, nil
	return rooms, boards
}
