package testsvc

import (
	"context"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TCPProxy forwards TCP connections from a loopback port to a service, so a
// test can make that service "go away" for one component without touching
// the shared server (never stop the system Postgres, Redis or RabbitMQ).
//
// Cut drops every open connection and refuses new ones: the proxy keeps its
// port and closes each connection it accepts at once, so the client sees a
// reset or EOF and no other process can take the port meanwhile. Restore
// forwards new connections again; what was cut stays cut. All methods are
// safe for concurrent use. The proxy is closed, and every goroutine it
// started has returned, when the test ends.
type TCPProxy struct {
	target  string
	ln      net.Listener
	ctx     context.Context // cancelled at close: stops dials to target
	down    atomic.Bool
	refused atomic.Int64

	mu     sync.Mutex // guards conns, closed and wg.Add after close
	conns  map[net.Conn]struct{}
	closed bool
	wg     sync.WaitGroup
}

// Proxy starts a TCPProxy on 127.0.0.1 to target (host:port), forwarding
// until Cut, and closed when t ends.
func Proxy(t testing.TB, target string) *TCPProxy {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ln, err := (&net.ListenConfig{}).Listen(ctx, "tcp", "127.0.0.1:0")
	if err != nil {
		cancel()
		t.Fatalf("proxy to %s: %v", target, err)
	}
	p := &TCPProxy{target: target, ln: ln, ctx: ctx, conns: map[net.Conn]struct{}{}}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(func() {
		p.mu.Lock()
		p.closed = true
		p.mu.Unlock()
		cancel()
		_ = ln.Close()
		p.dropAll()
		p.wg.Wait()
	})
	return p
}

// Addr is the proxy's host:port, where clients connect instead of target.
func (p *TCPProxy) Addr() string { return p.ln.Addr().String() }

// Cut drops every connection through the proxy and refuses new ones until
// Restore.
func (p *TCPProxy) Cut() {
	p.down.Store(true)
	p.dropAll()
}

// Restore forwards new connections to target again.
func (p *TCPProxy) Restore() { p.down.Store(false) }

// Refused is how many connections the proxy refused while cut: a test can
// wait on it to know its client tried again.
func (p *TCPProxy) Refused() int64 { return p.refused.Load() }

func (p *TCPProxy) dropAll() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		_ = c.Close()
		delete(p.conns, c)
	}
}

func (p *TCPProxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return // closed at cleanup
		}
		if p.down.Load() {
			p.refused.Add(1)
			_ = c.Close()
			continue
		}
		// Dial in the background: a slow target must not hold up Accept.
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			_ = c.Close()
			continue
		}
		p.wg.Add(1)
		p.mu.Unlock()
		go p.forward(c)
	}
}

func (p *TCPProxy) forward(c net.Conn) {
	defer p.wg.Done()
	ctx, cancel := context.WithTimeout(p.ctx, 5*time.Second)
	up, err := (&net.Dialer{}).DialContext(ctx, "tcp", p.target)
	cancel()
	if err != nil {
		_ = c.Close()
		return
	}
	p.mu.Lock()
	// Cut (or cleanup) while dialling: this connection belongs to the outage.
	if p.closed || p.down.Load() {
		p.mu.Unlock()
		p.refused.Add(1)
		_ = c.Close()
		_ = up.Close()
		return
	}
	p.conns[c], p.conns[up] = struct{}{}, struct{}{}
	p.wg.Add(2)
	p.mu.Unlock()
	go p.pipe(up, c)
	go p.pipe(c, up)
}

// pipe copies src to dst until either side closes, then closes both, so
// the other direction ends too.
func (p *TCPProxy) pipe(dst, src net.Conn) {
	defer p.wg.Done()
	_, _ = io.Copy(dst, src)
	_ = dst.Close()
	_ = src.Close()
	p.mu.Lock()
	delete(p.conns, dst)
	delete(p.conns, src)
	p.mu.Unlock()
}
