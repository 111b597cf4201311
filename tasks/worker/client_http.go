package worker

import (
	"net"
	"net/http"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

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

// traced returns a copy of c whose requests carry the W3C trace context of
// their context (traceparent) and, with tracing on, an HTTP client span.
func traced(c *http.Client) *http.Client {
	out := *c
	base := c.Transport
	if base == nil {
		base = http.DefaultTransport
	}
	out.Transport = tracingTransport{base: base}
	return &out
}

// tracingTransport starts the client span of each request ("HTTP POST")
// and sends its context on. It is what the worker used of otelhttp's
// transport: otelhttp also built span and metric attributes and cloned
// every request whether or not anything recorded them, ~5 % of the
// worker's CPU in BenchmarkTasks; here attributes are set only on a
// recording span.
type tracingTransport struct{ base http.RoundTripper }

func (t tracingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	ctx, span := tracer().Start(r.Context(), "HTTP "+r.Method, trace.WithSpanKind(trace.SpanKindClient))
	defer span.End()
	if span.IsRecording() {
		span.SetAttributes(
			attribute.String("http.request.method", r.Method),
			attribute.String("url.full", r.URL.Redacted()),
			attribute.String("server.address", r.URL.Hostname()),
		)
	}
	// A RoundTripper must not change the caller's request: the headers
	// the propagator writes go into a copy, made only if it writes one
	// (a task without a trace context has none to send).
	out := r.WithContext(ctx)
	carrier := &copyOnSetHeader{src: r.Header}
	telemetry.Propagator().Inject(ctx, carrier)
	if carrier.out != nil {
		out.Header = carrier.out
	}
	resp, err := t.base.RoundTrip(out)
	switch {
	case err != nil:
		span.SetStatus(codes.Error, err.Error())
	case span.IsRecording():
		span.SetAttributes(attribute.Int("http.response.status_code", resp.StatusCode))
		if resp.StatusCode >= 400 {
			span.SetStatus(codes.Error, resp.Status)
		}
	}
	return resp, err
}

// copyOnSetHeader is a propagation.TextMapCarrier over src that clones src
// on the first Set and writes into the clone, leaving src as it was.
type copyOnSetHeader struct{ src, out http.Header }

func (c *copyOnSetHeader) Get(key string) string {
	if c.out != nil {
		return c.out.Get(key)
	}
	return c.src.Get(key)
}

func (c *copyOnSetHeader) Set(key, value string) {
	if c.out == nil {
		c.out = c.src.Clone()
		if c.out == nil {
			c.out = http.Header{}
		}
	}
	c.out.Set(key, value)
}

func (c *copyOnSetHeader) Keys() []string {
	h := c.src
	if c.out != nil {
		h = c.out
	}
	return propagation.HeaderCarrier(h).Keys()
}
