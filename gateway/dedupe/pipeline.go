package dedupe

import (
	"context"
	"sync"

	"github.com/redis/go-redis/v9"
)

// maxBatch bounds the scripts one round trip carries, so a burst does not
// make one reply wait for thousands; maxInFlight bounds the round trips
// under way at once, so batches form while Redis (one thread) is busy, yet
// one slow reply does not stall every send.
const (
	maxBatch    = 256
	maxInFlight = 4
)

// pipeline sends the scripts of concurrent callers to Redis together (group
// commit): a caller that finds fewer than maxInFlight round trips under way
// sends the queue at once, with no linger, so an idle store adds no wait;
// callers that arrive while they are all under way queue and go together
// in the next one.
// Under load one round trip thus carries many sends' commands, and the
// batch grows with the load instead of with a timer.
type pipeline struct {
	rdb *redis.Client

	mu      sync.Mutex
	queue   []*call
	running int // round trips under way; their senders take the queue next
}

type call struct {
	script *redis.Script
	keys   []string
	args   []any
	cmd    *redis.Cmd
	done   chan struct{}
}

// run evaluates script in the next round trip and returns its reply; ctx
// bounds only the wait (the command itself is sent regardless).
func (p *pipeline) run(ctx context.Context, script *redis.Script, keys []string, args ...any) (any, error) {
	c := &call{script: script, keys: keys, args: args, done: make(chan struct{})}
	if err := p.runAll(ctx, []*call{c}); err != nil {
		return nil, err
	}
	return c.cmd.Result()
}

// runAll queues calls together, in order, and waits until each has its
// reply (read it from its cmd) or ctx ends.
func (p *pipeline) runAll(ctx context.Context, calls []*call) error {
	p.mu.Lock()
	p.queue = append(p.queue, calls...)
	lead := p.running < maxInFlight
	if lead {
		p.running++
	}
	p.mu.Unlock()
	if lead {
		p.lead(calls[len(calls)-1]) // the queue is in order: the last taken means every one was
	}
	for _, c := range calls {
		select {
		case <-c.done:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// next takes the next batch off the queue, or marks the pipeline idle and
// returns nil when the queue is empty.
func (p *pipeline) next() []*call {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := min(len(p.queue), maxBatch)
	if n == 0 {
		p.running--
		return nil
	}
	batch := p.queue[:n:n]
	p.queue = p.queue[n:]
	return batch
}

// lead sends batches until c has its reply (another sender may have taken
// it), then hands whatever is queued on to a goroutine of its own.
func (p *pipeline) lead(c *call) {
	for batch := p.next(); batch != nil; batch = p.next() {
		p.exec(batch)
		select {
		case <-c.done:
			if more := p.next(); more != nil {
				go p.drain(more)
			}
			return
		default:
		}
	}
}

// drain sends batches until the queue is empty.
func (p *pipeline) drain(batch []*call) {
	for ; batch != nil; batch = p.next() {
		p.exec(batch)
	}
}

// exec sends batch in one round trip by script hash; a Redis that lost its
// script cache (a restart, SCRIPT FLUSH) gets the bodies in a second one.
func (p *pipeline) exec(batch []*call) {
	ctx := context.Background() // bounded by the client's read and write timeouts
	send := func(byHash bool) {
		pipe := p.rdb.Pipeline()
		for _, c := range batch {
			if byHash {
				c.cmd = c.script.EvalSha(ctx, pipe, c.keys, c.args...)
			} else {
				c.cmd = c.script.Eval(ctx, pipe, c.keys, c.args...)
			}
		}
		_, _ = pipe.Exec(ctx) // each call reads its own command's error
	}
	send(true)
	for _, c := range batch {
		if redis.HasErrorPrefix(c.cmd.Err(), "NOSCRIPT") {
			send(false)
			break
		}
	}
	for _, c := range batch {
		close(c.done)
	}
}
