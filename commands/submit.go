package commands

import (
	"context"
	"errors"
	"sync"

	"github.com/rtstack/rtstack/events"
)

// AsyncLog is a Log that can issue an append without waiting for the broker,
// so one caller may have many appends in flight.
type AsyncLog interface {
	Log
	// AppendAsync issues the append of ev and returns; done is called once
	// with the outcome, possibly before AppendAsync returns, and must not
	// block (it may run on the log client's only completion goroutine).
	// Appends issued one after another for one room reach the log in the
	// order they were issued.
	AppendAsync(ctx context.Context, ev events.Event, done func(events.Position, error))
}

// Action is a room action that Submit can pipeline: a SendMessage,
// EditMessage, DeleteMessage or React.
type Action interface {
	// decide checks the action and takes what its append needs; with
	// once, a send whose client id another connection holds the claim of
	// returns errClaimHeld instead of waiting for that append's outcome.
	decide(ctx context.Context, h *Handler, once bool) (decision, error)
}

// errClaimHeld: a decide with once found another append's claim on the
// send's idempotency key.
var errClaimHeld = errors.New("commands: the idempotency key is claimed by another append")

var (
	_ Action = SendMessage{}
	_ Action = EditMessage{}
	_ Action = DeleteMessage{}
	_ Action = React{}
)

// decision is what an action decided before its append: the event to append
// (nil: nothing to append, res is the whole answer), the answer once the
// event is in the log, and what to do then.
type decision struct {
	ev    events.Event
	res   Result
	after func(ctx context.Context, pos events.Position) // nil: nothing
	// failed undoes what decide took for the append (a send's idempotency
	// claim) when the append fails; nil: nothing.
	failed func()
}

// run decides a and waits for its append.
func (h *Handler) run(ctx context.Context, a Action) (Result, error) {
	d, err := a.decide(ctx, h, false)
	if err != nil || d.ev == nil {
		return d.res, err
	}
	pos, err := h.append(ctx, d.ev)
	if err != nil {
		d.fail()
		return Result{}, err
	}
	return d.finish(ctx, pos), nil
}

func (d decision) fail() {
	if d.failed != nil {
		d.failed()
	}
}

func (d decision) finish(ctx context.Context, pos events.Position) Result {
	if d.after != nil {
		d.after(ctx, pos)
	}
	d.res.Position = pos
	return d.res
}

// Pending is a submitted action: its append is issued, its outcome comes
// later.
type Pending struct {
	ctx context.Context
	d   decision

	mu         sync.Mutex // guards the fields below
	known      bool
	pos        events.Position
	err        error
	followedUp chan struct{} // closed when the decision's after, started at the append, ended
}

// Submit decides a as the method of its type does (validation, authorship,
// the dedupe store) and issues its append without waiting for the broker.
// ready is called once when the outcome is known and, for a send, stored in
// the dedupe store (or that store gave up), possibly before Submit returns;
// it must not block. Then Result gives the outcome. Actions
// submitted one after another for one room are appended in that order.
// With a Log that is not an AsyncLog, Submit waits for the append.
func (h *Handler) Submit(ctx context.Context, a Action, ready func()) *Pending {
	d, err := a.decide(ctx, h, false)
	return h.issue(ctx, d, err, ready)
}

// issue appends what decide decided (or settles its error) as Submit does.
func (h *Handler) issue(ctx context.Context, d decision, err error, ready func()) *Pending {
	p := &Pending{ctx: ctx}
	p.d = d
	if err != nil || d.ev == nil {
		p.settle(events.Position{}, err)
		ready()
		return p
	}
	al, ok := h.cfg.Log.(AsyncLog)
	if !ok {
		pos, err := h.append(ctx, d.ev)
		if err != nil {
			d.fail()
		} else {
			p.followUp(ctx, pos, nil)
		}
		p.settle(pos, err)
		ready()
		return p
	}
	al.AppendAsync(ctx, d.ev, func(pos events.Position, err error) {
		if err != nil {
			err = appendFailed(err)
			if d.failed != nil {
				go d.failed() // the callback must not block on the dedupe store
			}
			p.settle(pos, err)
			ready()
			return
		}
		p.settle(pos, nil)
		// ready waits for the follow-up: the lane that answers this action
		// then never blocks on the dedupe store, and keeps submitting the
		// actions read meanwhile (their claims and appends) instead.
		p.followUp(ctx, pos, ready)
	})
	return p
}

// Submission is one action for SubmitAll, with its context and ready
// callback as Submit takes them.
type Submission struct {
	Ctx    context.Context
	Action Action
	Ready  func()
}

// SubmitAll submits actions of one room in order, as Submit one after
// another would, but decides them together: their idempotency claims go to
// the store at once (one round trip when it pipelines) instead of one
// round trip after another, and then their appends are issued in order.
// A send whose client id another append holds the claim of would have to
// wait for that append's outcome; then the claims taken for the sends after
// it are released, and it and the rest are submitted one by one, as Submit
// does: a lane never holds a later claim while it waits, so two
// connections waiting on each other's claims cannot wait forever. The
// first send's context bounds the wait for the claims of all (the gateway
// gives a run one deadline).
func (h *Handler) SubmitAll(subs []Submission) []*Pending {
	out := make([]*Pending, len(subs))
	if len(subs) == 1 {
		out[0] = h.Submit(subs[0].Ctx, subs[0].Action, subs[0].Ready)
		return out
	}
	ds, errs := h.decideAll(subs)
	for i, s := range subs {
		if errors.Is(errs[i], errClaimHeld) {
			for j := i + 1; j < len(subs); j++ {
				if errs[j] == nil {
					ds[j].fail() // drop a claim taken: it is taken again in turn
				}
			}
			for j := i; j < len(subs); j++ {
				out[j] = h.Submit(subs[j].Ctx, subs[j].Action, subs[j].Ready)
			}
			return out
		}
		out[i] = h.issue(s.Ctx, ds[i], errs[i], s.Ready)
	}
	return out
}

// decideAll decides subs as decide with once would, but claims the sends'
// idempotency keys together when the store can (a BatchClaimer).
func (h *Handler) decideAll(subs []Submission) ([]decision, []error) {
	ds, errs := make([]decision, len(subs)), make([]error, len(subs))
	bc, batch := h.cfg.Outcomes.(BatchClaimer)
	var keys []string
	var at []int // the index in subs of each key
	for i, s := range subs {
		sm, ok := s.Action.(SendMessage)
		if !batch || !ok || !sm.deduped(h) {
			ds[i], errs[i] = s.Action.decide(s.Ctx, h, true)
			continue
		}
		if errs[i] = sm.validate(); errs[i] == nil {
			keys, at = append(keys, sm.key()), append(at, i)
		}
	}
	if len(keys) == 0 {
		return ds, errs
	}
	claims, cerrs := bc.ClaimAll(subs[at[0]].Ctx, keys, claimTTL)
	for n, i := range at {
		sm := subs[i].Action.(SendMessage)
		pos, dup, release, held := claimed(subs[i].Ctx, bc, keys[n], claims[n], cerrs[n])
		switch {
		case held:
			errs[i] = errClaimHeld
		case dup:
			ds[i] = sm.duplicate(h, pos)
		default:
			ds[i] = sm.decision(h, release)
		}
	}
	return ds, errs
}

// followUp runs the decision's follow-up (a send remembering its outcome)
// as soon as the append is known, not when Result is called: a later action
// of the same lane waiting on that outcome (the same client id sent again)
// must not wait for this one to be answered first. With ready it runs on
// its own goroutine, bounded by the dedupe store's timeouts, because the
// append callback must not block, and calls ready once it ended (or at
// once when there is none).
func (p *Pending) followUp(ctx context.Context, pos events.Position, ready func()) {
	after := p.d.after
	if after == nil {
		if ready != nil {
			ready()
		}
		return
	}
	done := make(chan struct{})
	p.mu.Lock()
	p.followedUp = done
	p.mu.Unlock()
	if ready != nil {
		go func() {
			after(context.WithoutCancel(ctx), pos)
			close(done)
			ready()
		}()
		return
	}
	after(ctx, pos)
	close(done)
}

func (p *Pending) settle(pos events.Position, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.known, p.pos, p.err = true, pos, err
}

// Result returns the outcome of a submitted action once ready was called
// (by then the action's own follow-up, remembering a send's position in the
// dedupe store, ended, so it does not wait). Call it once.
func (p *Pending) Result() (Result, error) {
	p.mu.Lock()
	known, pos, err, followedUp := p.known, p.pos, p.err, p.followedUp
	p.mu.Unlock()
	switch {
	case !known:
		return Result{}, errors.New("commands: the outcome of the action is not known yet")
	case err != nil:
		return Result{}, err
	case p.d.ev == nil:
		return p.d.res, nil
	}
	d := p.d
	if followedUp != nil {
		<-followedUp // the outcome is remembered before the answer, as without pipelining
		d.after = nil
	}
	return d.finish(p.ctx, pos), nil
}
