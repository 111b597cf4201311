package worker

import (
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// settlement is what becomes of one delivery once its handler is done.
type settlement uint8

const (
	settleAck     settlement = iota // outcome durable (recorded, skipped, or republished)
	settleRequeue                   // nack, requeue: RabbitMQ redelivers it
	settleReject                    // nack, no requeue: the main queue dead-letters it to the DLQ
)

// acknowledger is the part of *amqp.Channel the acker uses.
type acknowledger interface {
	Ack(tag uint64, multiple bool) error
	Nack(tag uint64, multiple, requeue bool) error
}

var _ acknowledger = (*amqp.Channel)(nil)

// ackHold is how long an ack waits behind an earlier delivery still in
// progress before it is sent alone: a slow webhook must not hold back the
// acks, and so the prefetch window, of everything delivered after it. A
// variable so a test can hold every ack until the gap closes.
var ackHold = 50 * time.Millisecond

// acker settles the deliveries of one consumer channel. Acks of a run of
// consecutive delivery tags go out as one basic.ack with multiple=true
// (one frame, one settle in the quorum queue, instead of one per task);
// a multiple ack is sent only for a prefix of tags whose handlers have
// all finished, so it never covers a task in progress. Nacks go out at
// once, alone, before any later multiple ack: a settled tag is no longer
// outstanding, so that ack cannot swallow it. The acker only sends what a
// handler reported, so nothing is acked before its completion record
// committed (or its retry was confirmed).
type acker struct {
	ch   acknowledger
	in   chan tagged
	hold time.Duration
	done chan struct{}

	next    uint64            // lowest tag not yet settled; tags start at 1 per channel
	pending map[uint64]*state // finished tags above next
}

type tagged struct {
	tag uint64
	s   settlement
}

type state struct {
	due  bool // an ack not yet sent
	aged bool // seen by one hold tick already
}

// newAcker starts an acker over ch for up to capacity unsettled
// deliveries (the prefetch). Close it once every handler has settled.
func newAcker(ch acknowledger, capacity int, hold time.Duration) *acker {
	a := &acker{
		ch: ch, in: make(chan tagged, capacity), hold: hold, done: make(chan struct{}),
		next: 1, pending: make(map[uint64]*state, capacity),
	}
	go a.run()
	return a
}

// settle reports the outcome of delivery tag; each tag exactly once.
func (a *acker) settle(tag uint64, s settlement) { a.in <- tagged{tag, s} }

// close waits until every reported outcome has been sent.
func (a *acker) close() {
	close(a.in)
	<-a.done
}

func (a *acker) run() {
	defer close(a.done)
	tick := time.NewTicker(a.hold)
	defer tick.Stop()
	for {
		select {
		case t, ok := <-a.in:
			if !ok {
				a.flushStragglers(false)
				return
			}
			a.take(t)
		drain: // what else is ready goes in the same ack
			for {
				select {
				case t, ok := <-a.in:
					if !ok {
						break drain
					}
					a.take(t)
				default:
					break drain
				}
			}
			a.advance()
		case <-tick.C:
			a.flushStragglers(true)
		}
	}
}

// take records one outcome; a nack is sent at once.
func (a *acker) take(t tagged) {
	st := &state{due: t.s == settleAck}
	if !st.due {
		// Errors are not retried: a channel that failed redelivers every
		// unsettled delivery, and the completion record skips the done ones.
		_ = a.ch.Nack(t.tag, false, t.s == settleRequeue)
	}
	a.pending[t.tag] = st
}

// advance moves next over the finished prefix and acks it with one frame
// ending at its highest tag still outstanding.
func (a *acker) advance() {
	var last uint64
	for st, ok := a.pending[a.next]; ok; st, ok = a.pending[a.next] {
		if st.due {
			last = a.next
		}
		delete(a.pending, a.next)
		a.next++
	}
	if last != 0 {
		_ = a.ch.Ack(last, true)
	}
}

// flushStragglers acks alone the finished tags held behind a gap: with
// aged, only those that waited a whole tick already; without, all of them
// (the consumer stopped, the gap will not close).
func (a *acker) flushStragglers(aged bool) {
	a.advance()
	for tag, st := range a.pending {
		if !st.due {
			continue
		}
		if aged && !st.aged {
			st.aged = true
			continue
		}
		_ = a.ch.Ack(tag, false)
		st.due = false
	}
}
