package testsvc_test

import (
	"bufio"
	"context"
	"io"
	"net"
	"testing"
	"time"

	"github.com/rtstack/rtstack/internal/testsvc"
)

// echo serves a line echo on loopback until t ends.
func echo(t *testing.T) string {
	t.Helper()
	ln, err := (&net.ListenConfig{}).Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_, _ = io.Copy(c, c)
			}()
		}
	}()
	t.Cleanup(func() { _ = ln.Close(); <-done })
	return ln.Addr().String()
}

func dial(t *testing.T, addr string) net.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := (&net.Dialer{}).DialContext(ctx, "tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// roundTrip sends a line through c and reports whether it came back.
func roundTrip(c net.Conn) error {
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write([]byte("ping\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if line != "ping\n" {
		return io.ErrUnexpectedEOF
	}
	return nil
}

func TestProxyCutAndRestore(t *testing.T) {
	px := testsvc.Proxy(t, echo(t))

	before := dial(t, px.Addr())
	if err := roundTrip(before); err != nil {
		t.Fatalf("through the proxy: %v", err)
	}

	px.Cut()
	if err := roundTrip(before); err == nil {
		t.Fatal("a connection open before Cut still works after it")
	}
	if err := roundTrip(dial(t, px.Addr())); err == nil {
		t.Fatal("a new connection works while cut")
	}
	if px.Refused() < 1 {
		t.Errorf("Refused() = %d while cut, want >= 1", px.Refused())
	}

	px.Restore()
	if err := roundTrip(dial(t, px.Addr())); err != nil {
		t.Fatalf("after Restore: %v", err)
	}
}
