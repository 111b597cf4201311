package presence_test

import (
	"context"
	"io"
	"net"
	"sync"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/rtstack/rtstack/internal/testsvc"
)

// proxy is a TCP proxy to Redis that the test can cut and restore, to make
// Redis "go away" for one tracker without touching the shared server.
type proxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex // guards down, conns
	down   bool
	conns  map[net.Conn]struct{}
	wg     sync.WaitGroup
}

func startProxy(t *testing.T, target string) *proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln, target: target, conns: map[net.Conn]struct{}{}}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(func() {
		_ = ln.Close()
		p.cut()
		p.wg.Wait()
	})
	return p
}

func (p *proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		if p.down {
			p.mu.Unlock()
			_ = c.Close()
			continue
		}
		up, err := net.Dial("tcp", p.target)
		if err != nil {
			p.mu.Unlock()
			_ = c.Close()
			continue
		}
		p.conns[c], p.conns[up] = struct{}{}, struct{}{}
		p.mu.Unlock()
		p.wg.Add(2)
		go p.pipe(up, c)
		go p.pipe(c, up)
	}
}

func (p *proxy) pipe(dst, src net.Conn) {
	defer p.wg.Done()
	_, _ = io.Copy(dst, src)
	_ = dst.Close()
	_ = src.Close()
}

// cut drops every connection and refuses new ones until restore.
func (p *proxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = true
	for c := range p.conns {
		_ = c.Close()
	}
	clear(p.conns)
}

func (p *proxy) restore() {
	p.mu.Lock()
	p.down = false
	p.mu.Unlock()
}

// TestRedisOutageHeals: a gateway cut off from Redis for longer than TTL
// loses its users (the others sweep them and announce it); when Redis is
// back its heartbeat registers them again and announces that too.
func TestRedisOutageHeals(t *testing.T) {
	rdb, prefix := setup(t)
	ctx := context.Background()
	px := startProxy(t, testsvc.RedisAddr)
	cut := redis.NewClient(&redis.Options{Addr: px.ln.Addr().String(), MaxRetries: -1})
	t.Cleanup(func() { _ = cut.Close() })

	a := start(t, newTracker(t, rdb, prefix, "a"))
	b := start(t, newTracker(t, cut, prefix, "b"))
	must(t, a.Join(ctx, "r", "alice", "a1"))
	a.expect(t, "r", "alice")
	must(t, b.Join(ctx, "r", "bob", "b1"))
	a.expect(t, "r", "alice", "bob")

	px.cut()
	a.expect(t, "r", "alice") // swept by a after TTL
	online(t, a.Tracker, "r", "alice")

	px.restore()
	a.expect(t, "r", "alice", "bob") // b's heartbeat put bob back
	online(t, a.Tracker, "r", "alice", "bob")
	// b resubscribed and learned the room's list again.
	b.until(t, "r", "alice", "bob")
}
