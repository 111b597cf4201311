package gateway

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"time"
	"unicode/utf8"

	"github.com/gorilla/websocket"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/rtstack/rtstack/commands"
	"github.com/rtstack/rtstack/gateway/clienterr"
	"github.com/rtstack/rtstack/infra/kafka"
	"github.com/rtstack/rtstack/infra/telemetry"
)

// tracer is looked up at each use: the provider is installed after package init.
func tracer() trace.Tracer { return telemetry.Tracer("github.com/rtstack/rtstack/gateway") }

// readLoop is the connection's reader: it runs in the goroutine ServeHTTP
// starts, handles one client frame at a time, and on return tears the
// connection down (subscriptions, presence, writer).
func (c *conn) readLoop() {
	defer c.teardown()
	c.ws.SetReadLimit(c.s.cfg.MaxFrameBytes)
	_ = c.ws.SetReadDeadline(time.Now().Add(c.s.cfg.PongWait))
	c.ws.SetPongHandler(func(string) error {
		return c.ws.SetReadDeadline(time.Now().Add(c.s.cfg.PongWait))
	})
	for {
		_, data, err := c.ws.ReadMessage()
		if err != nil {
			if errors.Is(err, websocket.ErrReadLimit) {
				// gorilla has sent the 1009 close frame already.
				c.s.m.drops.WithLabelValues("frame_too_big").Inc()
				c.close(websocket.CloseMessageTooBig, "frame too big", false)
			}
			return
		}
		_ = c.ws.SetReadDeadline(time.Now().Add(c.s.cfg.PongWait))
		if !c.handle(data) {
			return
		}
		// A long recovery kept the reader from reading pongs: it counts
		// as activity, not silence.
		_ = c.ws.SetReadDeadline(time.Now().Add(c.s.cfg.PongWait))
	}
}

// teardown runs when the reader ends: the writer is stopped and waited for,
// the connection leaves every room and board, and the server stops
// counting it (ServeHTTP admitted it).
func (c *conn) teardown() {
	// The reader is not under net/http's handler any more, whose recover
	// kept a panic to its own connection: keep it so here.
	if r := recover(); r != nil {
		c.s.log.Error("connection reader panicked", "conn", c.id, "panic", r, "stack", string(debug.Stack()))
		c.close(websocket.CloseInternalServerErr, "internal error", false)
	}
	c.close(websocket.CloseNormalClosure, "", false)
	<-c.done
	c.mu.Lock()
	c.stopExpiryLocked()
	c.mu.Unlock()
	rooms, boards := c.takeMemberships()
	for _, r := range rooms {
		c.s.hub.unsubscribe(c, r)
		c.s.presenceLeave(r, c)
	}
	for _, b := range boards {
		c.s.hub.unsubscribeBoard(c, b)
	}
	c.s.forget(c)
	c.s.release(c.user)
	c.s.connWG.Done()
}

// handle processes one client frame; false ends the connection.
func (c *conn) handle(data []byte) bool {
	if code, msg := c.overRate(); code != "" {
		c.rejected++
		c.s.m.drops.WithLabelValues(code).Inc()
		if c.rejected >= c.s.cfg.AbuseAfter {
			c.s.log.Warn("abusive client closed", "conn", c.id, "user", c.user)
			c.close(websocket.ClosePolicyViolation, "too many frames", false)
			return false
		}
		f, _ := parseFrame(data)
		c.sendError(code, msg, f.ClientID)
		return true
	}
	c.rejected = 0
	if !utf8.Valid(data) {
		c.sendError(CodeInvalidUTF8, "frame is not valid UTF-8", nil)
		return true
	}
	f, err := parseFrame(data)
	if err != nil {
		code := CodeInvalid
		if errors.Is(err, errBadJSON) {
			code = CodeBadJSON
		}
		c.sendError(code, err.Error(), f.ClientID)
		return true
	}
	switch f.Type {
	case "join", "leave", "send", "edit", "delete", "react":
		// Shutdown waits for actions let through here until their answer
		// is queued, so an ack is never lost to the going-away close.
		if !c.s.beginCommand() {
			c.sendError(CodeShuttingDown, "server shutting down, reconnect", f.ClientID)
			return true
		}
		switch f.Type {
		case "join":
			c.join(&f)
		case "leave":
			c.leave(&f)
		default:
			if c.act(&f) {
				return true // the pipeline ends the command once it is answered
			}
		}
		c.s.endCommand()
	case "typing":
		c.typing(&f)
	case "subscribe":
		c.subscribe(&f)
	case "unsubscribe":
		c.unsubscribe(&f)
	case "refresh":
		c.refresh(&f)
	case "":
		c.sendError(CodeInvalid, "missing type", f.ClientID)
	default:
		c.sendError(CodeUnknownType, fmt.Sprintf("unknown type %q", f.Type), f.ClientID)
	}
	return true
}

// overRate takes a frame from the connection's bucket and the user's; code
// is non-empty when one of them is empty.
func (c *conn) overRate() (code, msg string) {
	if !c.limiter.Allow() {
		return CodeRateLimited, "rate limited: slow down"
	}
	if c.userLimiter != nil && !c.userLimiter.Allow() {
		return CodeUserRateLimited, "rate limited: your connections together send too fast"
	}
	return "", ""
}

func (c *conn) sendError(code, msg string, ref *string) {
	c.s.m.errors.WithLabelValues(code).Inc()
	c.pushWait(mustJSON(errorFrame{Type: "error", Code: code, Message: msg, Ref: ref}))
}

// fail answers err from a command with its client code.
func (c *conn) fail(op string, err error, ref *string) {
	class, expected := clienterr.Of(err)
	if !expected {
		c.s.log.Error("client action failed", "op", op, "conn", c.id, "err", err)
	} else if class.Code == CodeUnavailable {
		c.s.log.Warn("client action unavailable", "op", op, "conn", c.id, "err", err)
	}
	c.sendError(class.Code, clienterr.Message(class, err), ref)
}

func (c *conn) ack(clientID string, res commands.Result) {
	c.pushWait(mustJSON(ackFrame{
		Type: "ack", ClientID: clientID, MessageID: res.MessageID,
		Partition: res.Position.Partition, Offset: res.Position.Offset, Duplicate: res.Duplicate,
	}))
}

// command runs one client action against the log with the command timeout.
// The caller holds a beginCommand token, so adding to inflight here is
// allowed even while Shutdown waits.
func (c *conn) command(op string, fn func(ctx context.Context) (commands.Result, error)) (commands.Result, error) {
	c.s.inflight.Add(1)
	ctx, cancel := context.WithTimeout(context.Background(), c.s.cfg.CommandTimeout)
	type result struct {
		res commands.Result
		err error
	}
	done := make(chan result, 1)
	start := time.Now()
	// The append runs in its own goroutine, tracked by inflight: an
	// idempotent producer cannot fail a request already sent to a broker
	// that went away, so the client is answered at the timeout while the
	// append finishes (or fails) when the broker is back.
	ctx, span := c.startSpan(ctx, op)
	go func() {
		defer c.s.endCommand()
		defer cancel()
		res, err := fn(ctx)
		c.endSpan(span, op, start, res, err)
		done <- result{res, err}
	}()
	timer := time.NewTimer(c.s.cfg.CommandTimeout)
	defer timer.Stop()
	select {
	case r := <-done:
		return r.res, r.err
	case <-timer.C:
		select {
		case r := <-done:
			return r.res, r.err
		default:
		}
		return commands.Result{}, c.timedOut(ctx, op)
	}
}

// startSpan starts the trace of one action, which its event carries
// through the log to the projectors, the reactor and the workers.
func (c *conn) startSpan(ctx context.Context, op string) (context.Context, trace.Span) {
	return tracer().Start(telemetry.Root(ctx), "ws "+op, trace.WithSpanKind(trace.SpanKindServer),
		trace.WithAttributes(attribute.String("rtstack.user", c.user)))
}

// endSpan ends an action's span with its outcome and observes its append
// time when it succeeded.
func (c *conn) endSpan(span trace.Span, op string, start time.Time, res commands.Result, err error) {
	if err == nil {
		c.s.m.appendSeconds.WithLabelValues(op).Observe(time.Since(start).Seconds())
		span.SetAttributes(kafka.PartitionAttr(res.Position.Partition), kafka.OffsetAttr(res.Position.Offset))
	} else {
		span.SetStatus(codes.Error, err.Error())
	}
	span.End()
}

// timedOut logs and returns the error answering an action whose append had
// no outcome within CommandTimeout.
func (c *conn) timedOut(ctx context.Context, op string) error {
	c.s.log.WarnContext(ctx, "client action timed out; its outcome is unknown", "op", op, "conn", c.id)
	return fmt.Errorf("%w: %s: no answer from the log within %v (outcome unknown; resend with the same client_id)",
		errUnavailable, op, c.s.cfg.CommandTimeout)
}

// act checks send, edit, delete and react at the edge (the room must be
// valid and joined by this connection) and hands them to the pipeline;
// false when it answered the frame itself.
func (c *conn) act(f *clientFrame) bool {
	if err := commands.ValidateRoom(f.Room); err != nil {
		c.fail(f.Type, err, f.ClientID)
		return false
	}
	if !c.checkAccess(f.Room, f.ClientID) {
		return false
	}
	if !c.member(f.Room) {
		c.sendError(CodeNotMember, fmt.Sprintf("join %s first", f.Room), f.ClientID)
		return false
	}
	c.pipe(c.pipelineAction(f))
	return true
}

// join asks the log for membership (a MemberJoined, unless the user already
// is a member) and subscribes the connection to the room,
// first replaying the log after since when it is given.
func (c *conn) join(f *clientFrame) {
	if err := commands.ValidateRoom(f.Room); err != nil {
		c.fail("join", err, f.ClientID)
		return
	}
	if !c.checkAccess(f.Room, f.ClientID) {
		return
	}
	if c.member(f.Room) {
		c.sendError(CodeAlreadyJoined, fmt.Sprintf("already in %s", f.Room), f.ClientID)
		return
	}
	if c.roomCount() >= c.s.cfg.MaxRooms {
		c.sendError(CodeTooManyRooms, fmt.Sprintf("at most %d rooms per connection: leave one first", c.s.cfg.MaxRooms), f.ClientID)
		return
	}
	if !c.s.waitReady() {
		c.fail("join", fmt.Errorf("%w: the log tail is not running", errUnavailable), f.ClientID)
		return
	}
	var from int64
	if f.Since != nil {
		if f.Since.Partition == nil || f.Since.Offset == nil {
			c.sendError(CodeInvalid, "since needs partition and offset", f.ClientID)
			return
		}
		var reason string
		var err error
		from, reason, err = c.s.checkSince(f.Room, *f.Since)
		if err != nil {
			c.fail("join", err, f.ClientID)
			return
		}
		if reason != "" {
			c.s.m.resyncs.Inc()
			c.pushWait(mustJSON(resyncFrame{Type: "resync", Room: f.Room, Reason: reason}))
			return
		}
	}
	// Subscribe before appending, so the joiner's own MemberJoined (and
	// everything after it) reaches it.
	next := c.s.hub.subscribe(c, f.Room, f.Since != nil, from)
	res, err := c.command("join", func(ctx context.Context) (commands.Result, error) {
		return c.s.cfg.Commands.JoinRoom(ctx, commands.JoinRoom{Room: f.Room, User: c.user})
	})
	if err != nil {
		c.s.hub.unsubscribe(c, f.Room)
		c.fail("join", err, f.ClientID)
		return
	}
	c.setMember(f.Room, true)
	if f.Since != nil {
		if reason, err := c.s.recoverRoom(c, f.Room, *f.Since.Partition, from, next); err != nil || reason != "" {
			c.s.hub.unsubscribe(c, f.Room)
			c.setMember(f.Room, false)
			switch {
			case errors.Is(err, errConnClosed): // nobody to answer
			case err != nil:
				c.fail("join", err, f.ClientID)
			default:
				c.s.m.resyncs.Inc()
				c.pushWait(mustJSON(resyncFrame{Type: "resync", Room: f.Room, Reason: reason}))
			}
			return
		}
	}
	c.s.presenceJoin(f.Room, c)
	if f.ClientID != nil {
		c.ack(*f.ClientID, res)
	}
}

// leave appends MemberLeft; the subscription ends once that record has been
// delivered to this connection too.
func (c *conn) leave(f *clientFrame) {
	if err := commands.ValidateRoom(f.Room); err != nil {
		c.fail("leave", err, f.ClientID)
		return
	}
	if !c.member(f.Room) {
		c.sendError(CodeNotMember, fmt.Sprintf("not in %s", f.Room), f.ClientID)
		return
	}
	c.pipeline.awaitIdle(f.Room) // the leave goes to the log after the room's actions
	res, err := c.command("leave", func(ctx context.Context) (commands.Result, error) {
		return c.s.cfg.Commands.LeaveRoom(ctx, commands.LeaveRoom{Room: f.Room, User: c.user})
	})
	if err != nil {
		c.fail("leave", err, f.ClientID)
		return
	}
	c.setMember(f.Room, false)
	delete(c.typedAt, f.Room)
	c.s.hub.leave(c, f.Room, res.Position.Offset)
	c.s.presenceLeave(f.Room, c)
	if f.ClientID != nil {
		c.ack(*f.ClientID, res)
	}
}

// subscribe adds the connection to a board channel and sends a snapshot.
func (c *conn) subscribe(f *clientFrame) {
	if f.Channel != "leaderboard" && f.Channel != "counters" {
		c.sendError(CodeInvalid, fmt.Sprintf("unknown channel %q: leaderboard or counters", f.Channel), f.ClientID)
		return
	}
	if f.Channel == "counters" {
		if err := commands.ValidateRoom(f.Room); err != nil {
			c.fail("subscribe", err, f.ClientID)
			return
		}
		if !c.checkAccess(f.Room, f.ClientID) {
			return
		}
	}
	if c.s.cfg.Boards == nil {
		c.sendError(CodeUnavailable, f.Channel+" channel is not available on this server", f.ClientID)
		return
	}
	key := boardKey(f.Channel, f.Room)
	c.mu.Lock()
	_, again := c.boards[key]
	full := !again && len(c.boards) >= c.s.cfg.MaxSubscriptions
	c.mu.Unlock()
	if full {
		c.sendError(CodeTooManySubscriptions, fmt.Sprintf("at most %d subscriptions per connection: unsubscribe one first", c.s.cfg.MaxSubscriptions), f.ClientID)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.s.cfg.CommandTimeout)
	defer cancel()
	snap, err := c.s.readBoard(ctx, f.Channel, f.Room)
	if err != nil {
		c.fail("subscribe", err, f.ClientID)
		return
	}
	c.mu.Lock()
	if c.boards == nil {
		c.boards = map[string]struct{}{}
	}
	c.boards[key] = struct{}{}
	c.mu.Unlock()
	c.s.hub.subscribeBoard(c, key, f.Room, snap)
	c.pushWait(snap)
}

func (c *conn) unsubscribe(f *clientFrame) {
	key := boardKey(f.Channel, f.Room)
	c.mu.Lock()
	delete(c.boards, key)
	c.mu.Unlock()
	c.s.hub.unsubscribeBoard(c, key)
}
