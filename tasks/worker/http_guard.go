package worker

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"syscall"
	"time"

	"github.com/rtstack/rtstack/commands"
)

// ErrPrivateTarget: a webhook target resolved to a loopback, private,
// link-local or unspecified address and private targets are not allowed.
// It is permanent: the task goes to the DLQ at once.
var ErrPrivateTarget = errors.New("webhook target is a loopback or private address (WEBHOOK_ALLOW_PRIVATE=false)")

// guardControl refuses connections to private addresses. It runs after DNS
// resolution, on the address actually dialled, so a public name that
// resolves to 10.0.0.1 (or is rebound to it) is refused too.
func guardControl(network, address string, _ syscall.RawConn) error {
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		return fmt.Errorf("dial %s: %w", address, err)
	}
	ip := net.ParseIP(host)
	if ip == nil || commands.IsPrivateIP(ip) {
		return fmt.Errorf("dial %s %s: %w", network, address, ErrPrivateTarget)
	}
	return nil
}

// NewHTTPClient returns the client webhooks are delivered with: no proxy
// from the environment, no redirects (a 3xx is a failed attempt), and unless
// allowPrivate a dialer that refuses loopback and private addresses.
// Per-request deadlines come from the request context.
func NewHTTPClient(allowPrivate bool) *http.Client {
	d := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
	if !allowPrivate {
		d.Control = guardControl
	}
	return &http.Client{
		Transport: &http.Transport{
			Proxy:                 nil,
			DialContext:           d.DialContext,
			MaxIdleConns:          256,
			MaxIdleConnsPerHost:   MaxPrefetch,
			IdleConnTimeout:       90 * time.Second,
			TLSHandshakeTimeout:   10 * time.Second,
			ExpectContinueTimeout: time.Second,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}
