package worker

import (
	"net"
	"net/http"
	"time"

	"github.com/rtstack/rtstack/internal/egress"
)

// NewHTTPClient returns the client webhooks are delivered with: no proxy
// from the environment, no redirects (a 3xx is a failed attempt), and unless
// allowPrivate a dialer that refuses loopback and private addresses
// (egress.GuardDial, an error wrapping egress.ErrPrivateTarget).
// Per-request deadlines come from the request context.
func NewHTTPClient(allowPrivate bool) *http.Client {
	d := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
	if !allowPrivate {
		d.Control = egress.GuardDial
	}
	return &http.Client{
		Transport: &http.Transport{
			Proxy:       nil,
			DialContext: d.DialContext,
			// Every delivery in progress may keep its connection to the target.
			MaxIdleConns:          MaxPrefetch,
			MaxIdleConnsPerHost:   MaxPrefetch,
			IdleConnTimeout:       90 * time.Second,
			TLSHandshakeTimeout:   10 * time.Second,
			ExpectContinueTimeout: time.Second,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}
