package worker

import (
	"runtime"
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

// ackHold is about how long an ack waits behind an earlier delivery still
// in progress before it is sent alone: a slow webhook must not hold back
// the acks, and so the prefetch window, of everything delivered after it.
// In BenchmarkTasks most gaps close within a record batch: a hold of 5 ms
// kept as many acks waiting as 50 ms (~56 of the 256 in the window) but
// sent 5 times as many frames. A variable so a test can hold every ack
// until the gap closes.
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
	due     int               // entries of pending whose ack is not sent
	held    []uint64          // their tags, and some already settled: flushStragglers skips those
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
	// The hold timer runs only while finished deliveries wait behind a
	// gap: an idle worker does not wake.
	timer := time.NewTimer(a.hold)
	timer.Stop()
	armed := false
	for {
		select {
		case t, ok := <-a.in:
			if !ok {
				a.flushStragglers(false)
				return
			}
			a.take(t)
			// The handlers of one record batch wake together: let them
			// report before this ack goes out, so it covers them all.
			runtime.Gosched()
			a.drain()
			a.advance()
		case <-timer.C:
			armed = false
			a.flushStragglers(true)
		}
		if !armed && a.waiting() {
			timer.Reset(a.hold)
			armed = true
		}
	}
}

// drain takes every outcome already reported, without waiting.
func (a *acker) drain() {
	for {
		select {
		case t, ok := <-a.in:
			if !ok {
				return // run sees the close at its next receive
			}
			a.take(t)
		default:
			return
		}
	}
}

// waiting reports whether an ack is held behind a gap.
func (a *acker) waiting() bool { return a.due > 0 }

// take records one outcome; a nack is sent at once.
func (a *acker) take(t tagged) {
	st := &state{due: t.s == settleAck}
	if st.due {
		a.due++
		a.held = append(a.held, t.tag)
	} else {
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
			a.due--
		}
		delete(a.pending, a.next)
		a.next++
	}
	if last != 0 {
		_ = a.ch.Ack(last, true)
	}
	if a.due == 0 {
		a.held = a.held[:0]
	}
}

// flushStragglers acks alone the finished tags held behind a gap: with
// aged, only those held for a whole hold already (so each waits one to
// two holds); without, all of them (the consumer stopped, the gap will
// not close).
func (a *acker) flushStragglers(aged bool) {
	a.advance()
	keep := a.held[:0]
	for _, tag := range a.held {
		st, ok := a.pending[tag]
		if !ok || !st.due {
			continue
		}
		if aged && !st.aged {
			st.aged = true
			keep = append(keep, tag)
			continue
		}
		_ = a.ch.Ack(tag, false)
		st.due = false
		a.due--
	}
	a.held = keep
}
