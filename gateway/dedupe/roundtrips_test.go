package dedupe

import (
	"context"
	"net"
	"slices"
	"sync"

	"github.com/redis/go-redis/v9"
)

// RoundTrips is a go-redis hook counting the round trips and commands the
// store sends: a lone command is one round trip, a pipeline is one for all
// its commands. The client's own handshake (HELLO, CLIENT) is not counted.
type RoundTrips struct {
	mu    sync.Mutex
	sizes []int // commands per round trip, in order
	// Gate, when set, holds each counted pipeline until it receives (tests use it
	// to let callers queue behind a round trip under way).
	Gate chan struct{}
}

// note counts cmds as one round trip unless they are all handshake, and
// says whether it counted them.
func (r *RoundTrips) note(cmds []redis.Cmder) bool {
	n := 0
	for _, c := range cmds {
		if name := c.Name(); name != "hello" && name != "client" {
			n++
		}
	}
	if n > 0 {
		r.mu.Lock()
		r.sizes = append(r.sizes, n)
		r.mu.Unlock()
	}
	return n > 0
}

// Len is the number of round trips counted so far.
func (r *RoundTrips) Len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.sizes)
}

// Sizes returns the commands of each round trip so far and forgets them.
func (r *RoundTrips) Sizes() []int {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := slices.Clone(r.sizes)
	r.sizes = nil
	return s
}

func (r *RoundTrips) DialHook(next redis.DialHook) redis.DialHook {
	return func(ctx context.Context, network, addr string) (net.Conn, error) { return next(ctx, network, addr) }
}

func (r *RoundTrips) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		r.note([]redis.Cmder{cmd})
		return next(ctx, cmd)
	}
}

func (r *RoundTrips) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		if r.note(cmds) && r.Gate != nil { // never the handshake of a new connection
			<-r.Gate
		}
		return next(ctx, cmds)
	}
}
