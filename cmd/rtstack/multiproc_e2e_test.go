package main

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/rtstack/rtstack/internal/testsvc"
)

// TestSeparateProcesses runs rtstack as a deployment would across machines:
// one broker, two gateways, the projectors, the reactor and the workers,
// each its own process. Clients on different gateways see one order, and
// either gateway serves the history the projector wrote.
func TestSeparateProcesses(t *testing.T) {
	d := newDevEnv(t)
	// Outside rtstack dev the secret must be at least 32 bytes.
	d.useSecret(t, "separate-processes-secret-of-32-bytes+")
	b := start(t, d.env, "broker")
	waitListening(t, d.brokerAddr, b)
	for _, part := range []string{"project", "react", "work"} {
		start(t, d.env, part)
	}
	gw1 := d.startGateway(t, d.httpAddr)
	gw2 := d.startGateway(t, testsvc.FreeAddr(t))
	// The dev login is rtstack dev's alone: a gateway has no such endpoint,
	// and its page does not offer it.
	if code, body := devLogin(t, gw1.httpAddr, "mallory"); code != http.StatusNotFound {
		t.Fatalf("dev login on rtstack gateway: HTTP %d %v, want 404", code, body)
	}
	if cfg := pageConfig(t, gw1.httpAddr); cfg["dev_login"] != false {
		t.Fatalf("gateway page config %v offers dev login", cfg)
	}

	c1 := gw1.dial(t, "alice")
	c2 := gw2.dial(t, "bob")
	for _, c := range []*wsClient{c1, c2} {
		c.send(map[string]any{"type": "join", "room": "lobby"})
	}
	c1.await("joined")
	c2.await("joined")

	const n = 100
	for i := range n {
		c1.send(map[string]any{"type": "send", "room": "lobby", "text": fmt.Sprint("a", i), "client_id": fmt.Sprint("a", i)})
		c2.send(map[string]any{"type": "send", "room": "lobby", "text": fmt.Sprint("b", i), "client_id": fmt.Sprint("b", i)})
	}
	order := func(c *wsClient) []string {
		var out []string
		for len(out) < 2*n {
			m := c.await("message")
			out = append(out, fmt.Sprintf("%s@%s", m["text"], pos(m)))
		}
		return out
	}
	o1, o2 := order(c1), order(c2)
	for i := range o1 {
		if o1[i] != o2[i] {
			t.Fatalf("gateways disagree at %d: %s vs %s", i, o1[i], o2[i])
		}
	}

	// The projector (its own process) has the history; gateway 2 serves it
	// after the last position its client saw.
	last := c2.last
	var hist struct{ Messages []map[string]any }
	if code := gw2.get(t, "bob", "/api/rooms/lobby/messages?limit=500&after="+last, &hist); code != http.StatusOK || len(hist.Messages) != 2*n {
		t.Fatalf("history via gateway 2: HTTP %d, %d messages, want %d", code, len(hist.Messages), 2*n)
	}
}

// startGateway runs `rtstack gateway` on addr and returns an env aimed at it.
func (d *devEnv) startGateway(t *testing.T, addr string) *devEnv {
	t.Helper()
	g := *d
	g.httpAddr = addr
	g.env = append(append([]string(nil), d.env...), "HTTP_ADDR="+addr)
	p := start(t, g.env, "gateway")
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if resp, err := http.Get("http://" + addr + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return &g
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("gateway on %s not ready:\n%s", addr, p.stderr)
	return nil
}
