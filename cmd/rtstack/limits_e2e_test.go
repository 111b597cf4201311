package main

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"testing"
	"time"
)

// A POST whose body trickles in a byte a second is cut when
// HTTP_READ_TIMEOUT runs out, whether or not it carries a token (the
// handler reads the body, or refuses it unread); the server, not the client,
// closes the connection.
func TestTricklingBodyIsCut(t *testing.T) {
	const readTimeout, slack = 2 * time.Second, 10 * time.Second
	d := newDevEnv(t)
	d.useSecret(t, "trickling-body-test-secret-of-32-bytes")
	d.env = append(d.env, fmt.Sprintf("HTTP_READ_TIMEOUT=%v", readTimeout))
	b := start(t, d.env, "broker")
	waitListening(t, d.brokerAddr, b)
	g := d.startGateway(t, d.httpAddr)
	for _, tc := range []struct{ name, auth string }{
		{"with a token", "Authorization: Bearer " + d.token(t, "admin", true) + "\r\n"},
		{"without a token", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conn, err := net.Dial("tcp", g.httpAddr)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			began := time.Now()
			if _, err := fmt.Fprintf(conn, "POST /api/rooms/lobby/webhooks HTTP/1.1\r\nHost: rtstack\r\n"+
				"Content-Type: application/json\r\nContent-Length: 1000\r\n%s\r\n", tc.auth); err != nil {
				t.Fatal(err)
			}
			stop := make(chan struct{})
			defer close(stop)
			go func() {
				tick := time.NewTicker(time.Second)
				defer tick.Stop()
				for {
					select {
					case <-stop:
						return
					case <-tick.C:
					}
					if _, err := conn.Write([]byte(" ")); err != nil {
						return
					}
				}
			}()
			_ = conn.SetReadDeadline(began.Add(readTimeout + slack))
			_, err = io.Copy(io.Discard, conn) // until the server closes
			if errors.Is(err, os.ErrDeadlineExceeded) {
				t.Fatalf("the connection was still open %v after the request began (HTTP_READ_TIMEOUT %v)", time.Since(began), readTimeout)
			}
			t.Logf("cut after %v (HTTP_READ_TIMEOUT %v; %v)", time.Since(began).Round(time.Millisecond), readTimeout, err)
		})
	}
}
