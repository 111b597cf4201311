package rabbit

import (
	"context"
	"errors"
	"fmt"
	"sync"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/rtstack/rtstack/tasks"
)

// ErrNotConfirmed: RabbitMQ nacked a publish, or the channel closed before
// confirming it. The message may or may not be queued; publish it again.
var ErrNotConfirmed = errors.New("publish not confirmed by RabbitMQ")

// ErrReturned: RabbitMQ returned a mandatory publish because no queue took
// it (the queue was deleted). RabbitMQ confirms such a message all the
// same, so without this check a confirmed task would be lost; it is an
// error, and the caller publishes again once the topology is back.
var ErrReturned = errors.New("publish returned by RabbitMQ: no queue took it")

// confirmChunk bounds the publishes awaited together, and so the returns
// that can be pending at once (the returns channel's capacity). It covers
// a reactor batch (DefaultMaxBatch records) in one round of confirms: at
// 256 the publisher stopped for every 256 confirms and a 2,000-task batch
// took twice as long as raw publishing.
const confirmChunk = 2048

// Publisher publishes task messages on one confirm-mode channel of its own
// connection. It is safe for concurrent use. A Publisher whose connection
// failed stays failed: its owner closes it and makes a new one.
type Publisher struct {
	topo Topology
	conn *amqp.Connection
	own  bool // Close closes conn, not just ch
	// mu guards ch from publish to the last confirm of a call, so sequence
	// numbers match confirms and every return read belongs to that call.
	mu      sync.Mutex
	ch      *amqp.Channel
	returns chan amqp.Return // mandatory publishes RabbitMQ could not route
}

// NewPublisher dials cfg's RabbitMQ, declares the topology and puts a
// channel in confirm mode. The caller closes it.
func NewPublisher(ctx context.Context, cfg Config) (*Publisher, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	conn, err := Dial(ctx, cfg.url())
	if err != nil {
		return nil, err
	}
	p, err := OpenPublisher(conn, cfg.Topology())
	if err != nil {
		_ = conn.Close()
		return nil, err
	}
	p.own = true
	return p, nil
}

// OpenPublisher opens a publisher on a channel of conn, declaring topo
// first. Its Close closes the channel only.
func OpenPublisher(conn *amqp.Connection, topo Topology) (*Publisher, error) {
	ch, err := conn.Channel()
	if err != nil {
		return nil, fmt.Errorf("open channel: %w", err)
	}
	if err := topo.Declare(conn, ch); err != nil {
		return nil, err
	}
	if err := ch.Confirm(false); err != nil {
		return nil, fmt.Errorf("confirm mode: %w", err)
	}
	returns := ch.NotifyReturn(make(chan amqp.Return, confirmChunk))
	return &Publisher{topo: topo, conn: conn, ch: ch, returns: returns}, nil
}

// Topology returns the queues p publishes to.
func (p *Publisher) Topology() Topology { return p.topo }

// PublishTasks publishes ts to the main queue as first attempts and waits
// until RabbitMQ confirmed every one (the confirms of a batch are awaited
// together, not one by one).
func (p *Publisher) PublishTasks(ctx context.Context, ts ...tasks.Task) error {
	es := make([]Envelope, len(ts))
	for i, t := range ts {
		es[i] = Envelope{Task: t, Attempt: 1}
	}
	return p.Publish(ctx, p.topo.Main(), es...)
}

// Publish publishes es to queue (on the default exchange) and waits for all
// their confirms. Any nack or a closed channel is ErrNotConfirmed.
func (p *Publisher) Publish(ctx context.Context, queue string, es ...Envelope) error {
	msgs := make([]amqp.Publishing, len(es))
	for i, e := range es {
		m, err := e.Publishing()
		if err != nil {
			return err
		}
		msgs[i] = m
	}
	return p.PublishRaw(ctx, queue, msgs...)
}

// PublishRaw publishes msgs as they are to queue, mandatory, and waits for
// all their confirms. A message RabbitMQ returns (no such queue) fails the
// call with ErrReturned even though it is confirmed.
func (p *Publisher) PublishRaw(ctx context.Context, queue string, msgs ...amqp.Publishing) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.drainReturns() // left by a call that failed half-way
	for len(msgs) > 0 {
		n := min(len(msgs), confirmChunk)
		if err := p.publishChunk(ctx, queue, msgs[:n]); err != nil {
			return err
		}
		msgs = msgs[n:]
	}
	return nil
}

// publishChunk publishes at most confirmChunk messages and awaits their
// confirms. RabbitMQ sends a return before the confirm of the same
// message and the client hands it over before reading on, so once every
// confirm is in, every return of the chunk is in p.returns.
func (p *Publisher) publishChunk(ctx context.Context, queue string, msgs []amqp.Publishing) error {
	dcs := make([]*amqp.DeferredConfirmation, 0, len(msgs))
	for _, m := range msgs {
		dc, err := p.ch.PublishWithDeferredConfirmWithContext(ctx, "", queue, true, false, m)
		if err != nil {
			return fmt.Errorf("publish to %s: %w", queue, err)
		}
		dcs = append(dcs, dc)
	}
	for _, dc := range dcs {
		ok, err := dc.WaitContext(ctx)
		if err != nil {
			return fmt.Errorf("await confirm from %s: %w", queue, err)
		}
		if !ok {
			return fmt.Errorf("publish to %s: %w", queue, ErrNotConfirmed)
		}
	}
	if returned := p.drainReturns(); len(returned) > 0 {
		r := returned[0]
		return fmt.Errorf("%w: %d message(s) to %s, first %s: %d %s", ErrReturned, len(returned), queue, r.MessageId, r.ReplyCode, r.ReplyText)
	}
	return nil
}

// drainReturns takes every return waiting, without blocking.
func (p *Publisher) drainReturns() []amqp.Return {
	var out []amqp.Return
	for {
		select {
		case r, ok := <-p.returns:
			if !ok {
				return out
			}
			out = append(out, r)
		default:
			return out
		}
	}
}

// Close closes p's connection (its channel, if it came from OpenPublisher).
// It is idempotent.
func (p *Publisher) Close() error {
	if !p.own {
		if p.ch.IsClosed() {
			return nil
		}
		return p.ch.Close()
	}
	if p.conn.IsClosed() {
		return nil
	}
	return p.conn.Close()
}
