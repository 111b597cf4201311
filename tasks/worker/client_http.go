package worker

import (
	"net"
	"net/http"
	"time"

	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"

	"github.com/rtstack/rtstack/infra/telemetry"
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

// traced returns a copy of c whose requests carry the W3C trace context of
// their context (traceparent) and, with tracing on, an HTTP client span.
func traced(c *http.Client) *http.Client {
	out := *c
	out.Transport = otelhttp.NewTransport(c.Transport, otelhttp.WithPropagators(telemetry.Propagator()))
	return &out
}
