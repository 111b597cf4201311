package gateway

import (
	"context"
	"slices"
	"sync"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/rtstack/rtstack/commands"
)

// pipeline lets one connection have up to MaxInflight room actions (send,
// edit, delete, react) between the reader and their answer. Each room with
// actions has a lane: a goroutine that submits the room's actions in the
// order they were read, without waiting for the previous append, and
// answers them in that order as their outcomes come. The reader waits for a
// free slot when all are taken: backpressure through TCP, no error.
type pipeline struct {
	slots chan struct{} // one per action read and not yet answered

	mu    sync.Mutex // guards lanes and the lane and action fields marked so
	idle  *sync.Cond // on mu: broadcast when a lane ends
	lanes map[string]*lane
}

func newPipeline(maxInflight int) *pipeline {
	p := &pipeline{slots: make(chan struct{}, maxInflight), lanes: map[string]*lane{}}
	p.idle = sync.NewCond(&p.mu)
	return p
}

// lane is one room's actions, in the order they were read.
type lane struct {
	wake chan struct{} // capacity 1: an action arrived or an outcome is known
	// Guarded by pipeline.mu: actions[:issued] were submitted; the head
	// is the oldest action not yet answered.
	actions []*action
	issued  int
}

// action is one client frame in a lane.
type action struct {
	f   *clientFrame
	cmd commands.Action
	// needsRead is set for edit and delete: their authorship check reads
	// a projection, so they are submitted only once every earlier action of
	// the room was answered, as on a connection without pipelining.
	needsRead bool

	// Set by the lane goroutine alone.
	pending *commands.Pending
	ctx     context.Context // the action's, with its trace
	cancel  context.CancelFunc
	span    trace.Span
	start   time.Time

	// Guarded by pipeline.mu.
	decided  bool // the outcome is known, or the command timeout passed
	timedOut bool
}

func (l *lane) signal() {
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

// pipelineAction turns a room action frame into its command.
func (c *conn) pipelineAction(f *clientFrame) *action {
	a := &action{f: f}
	switch f.Type {
	case "send":
		a.cmd = commands.SendMessage{Room: f.Room, User: c.user, ClientID: f.refString(), Text: f.Text}
	case "edit":
		a.cmd, a.needsRead = commands.EditMessage{Room: f.Room, User: c.user, MessageID: f.MessageID, Text: f.Text}, true
	case "delete":
		a.cmd, a.needsRead = commands.DeleteMessage{Room: f.Room, User: c.user, MessageID: f.MessageID}, true
	default:
		a.cmd = commands.React{Room: f.Room, User: c.user, MessageID: f.MessageID, Emoji: f.Emoji, Remove: f.Remove}
	}
	return a
}

// pipe hands an action to its room's lane, first waiting for a slot. The
// caller holds a beginCommand token; the lane ends it once the action is
// answered.
func (c *conn) pipe(a *action) {
	p := c.pipeline
	p.slots <- struct{}{}
	c.s.m.actionsInFlight.Inc()
	p.mu.Lock()
	l := p.lanes[a.f.Room]
	if l == nil {
		l = &lane{wake: make(chan struct{}, 1)}
		p.lanes[a.f.Room] = l
		go c.runLane(a.f.Room, l)
	}
	l.actions = append(l.actions, a)
	p.mu.Unlock()
	l.signal()
}

// awaitIdle waits until room has no action in the pipeline, so a leave is
// appended after every action read before it.
func (p *pipeline) awaitIdle(room string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for p.lanes[room] != nil {
		p.idle.Wait()
	}
}

// runLane submits and answers room's actions until it has none.
func (c *conn) runLane(room string, l *lane) {
	for {
		next, answers, done := c.pipeline.step(room, l)
		if done {
			return
		}
		for _, a := range answers {
			c.answer(a)
		}
		if len(next) > 0 {
			c.submit(l, next)
			continue
		}
		if len(answers) == 0 {
			<-l.wake
		}
	}
}

// step takes the decided actions at the head of l and the next actions to
// submit, those that may be submitted now: every action read and not yet
// submitted, up to the first that needs a read (which goes alone, once
// every earlier one was answered). done when l has nothing left, and then
// l is gone.
func (p *pipeline) step(room string, l *lane) (next, answers []*action, done bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for len(l.actions) > 0 && l.issued > 0 && l.actions[0].decided {
		answers = append(answers, l.actions[0])
		l.actions[0] = nil
		l.actions = l.actions[1:]
		l.issued--
	}
	if l.issued < len(l.actions) && l.actions[l.issued].needsRead {
		if l.issued == 0 {
			next = l.actions[:1:1]
			l.issued++
		}
	} else {
		from := l.issued
		for l.issued < len(l.actions) && !l.actions[l.issued].needsRead {
			l.issued++
		}
		next = slices.Clone(l.actions[from:l.issued])
	}
	if len(l.actions) == 0 && len(answers) == 0 {
		delete(p.lanes, room)
		p.idle.Broadcast()
		return nil, nil, true
	}
	return next, answers, false
}

// decide marks a's outcome known (or its time up) and wakes its lane; it
// runs on the log's completion goroutine and never blocks.
func (p *pipeline) decide(l *lane, a *action, timedOut bool) {
	p.mu.Lock()
	if !a.decided {
		a.decided, a.timedOut = true, timedOut
	}
	p.mu.Unlock()
	l.signal()
}

// submit issues the appends of as, in order, without waiting for them
// (decided together: see commands.Handler.SubmitAll). Each outcome decides
// its action, or CommandTimeout does: an idempotent producer cannot fail a
// request already sent to a broker that went away, so the client is
// answered at the timeout while the append finishes (or fails) when the
// broker is back. Each append holds an inflight token until then, so
// Shutdown waits for it.
func (c *conn) submit(l *lane, as []*action) {
	subs := make([]commands.Submission, len(as))
	for i, a := range as {
		ctx, cancel := context.WithTimeout(context.Background(), c.s.cfg.CommandTimeout)
		ctx, span := c.startSpan(ctx, a.f.Type)
		a.ctx, a.cancel, a.span, a.start = ctx, cancel, span, time.Now()
		context.AfterFunc(ctx, func() { c.pipeline.decide(l, a, true) })
		c.s.inflight.Add(1)
		subs[i] = commands.Submission{Ctx: ctx, Action: a.cmd, Ready: func() {
			c.pipeline.decide(l, a, false)
			c.s.endCommand()
		}}
	}
	for i, p := range c.s.cfg.Commands.SubmitAll(subs) {
		as[i].pending = p
	}
}

// answer queues a's ack or error and frees its slot.
func (c *conn) answer(a *action) {
	f := a.f
	defer func() {
		a.cancel()
		<-c.pipeline.slots
		c.s.m.actionsInFlight.Dec()
		c.s.endCommand()
	}()
	var res commands.Result
	var err error
	if a.timedOut {
		err = c.timedOut(a.ctx, f.Type)
	} else {
		res, err = a.pending.Result()
	}
	c.endSpan(a.span, f.Type, a.start, res, err)
	if err != nil {
		c.fail(f.Type, err, f.ClientID)
		return
	}
	if f.Type == "send" || f.ClientID != nil {
		c.ack(f.refString(), res)
	}
}
