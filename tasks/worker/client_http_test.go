package worker

import (
	"context"
	"net/http"
	"testing"

	"go.opentelemetry.io/otel/trace"
)

type recordingTransport struct{ got *http.Request }

func (t *recordingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	t.got = r
	return &http.Response{StatusCode: http.StatusNoContent, Body: http.NoBody, Request: r}, nil
}

// The transport sends the trace context on without touching the caller's
// headers, and copies them only when there is a context to send.
func TestTracingTransportInjectsIntoACopy(t *testing.T) {
	sc := trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: trace.TraceID{1, 2, 3}, SpanID: trace.SpanID{4, 5, 6}, TraceFlags: trace.FlagsSampled,
	})
	for _, c := range []struct {
		name   string
		ctx    context.Context
		traced bool
	}{
		{"with a trace", trace.ContextWithRemoteSpanContext(context.Background(), sc), true},
		{"without", context.Background(), false},
	} {
		base := &recordingTransport{}
		req, err := http.NewRequestWithContext(c.ctx, http.MethodPost, "http://example.com/h", http.NoBody)
		if err != nil {
			t.Fatal(err)
		}
		req.Header = http.Header{"X-Rtstack-Delivery": {"t1"}}
		resp, err := tracingTransport{base: base}.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		sent := base.got.Header
		if got := sent.Get("Traceparent"); (got != "") != c.traced {
			t.Errorf("%s: traceparent %q", c.name, got)
		}
		if sent.Get("X-Rtstack-Delivery") != "t1" {
			t.Errorf("%s: the caller's header is lost: %v", c.name, sent)
		}
		if req.Header.Get("Traceparent") != "" || len(req.Header) != 1 {
			t.Errorf("%s: the caller's request changed: %v", c.name, req.Header)
		}
	}
}
