package telemetry_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rtstack/rtstack/infra/telemetry"
)

// With an OTLP endpoint in the standard variables, Setup exports spans
// there over http/protobuf, under the service name OTEL_SERVICE_NAME
// gives; its shutdown flushes them and turns tracing off again.
func TestSetupExportsOverOTLPHTTP(t *testing.T) {
	var mu sync.Mutex // guards got
	var got []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		got = append(got, r.Method+" "+r.URL.Path+" "+r.Header.Get("Content-Type")+" "+string(body))
		mu.Unlock()
		w.Header().Set("Content-Type", "application/x-protobuf")
	}))
	defer srv.Close()
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", srv.URL)
	t.Setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
	t.Setenv("OTEL_SERVICE_NAME", "rtstack-under-test")

	shutdown, err := telemetry.Setup(context.Background(), telemetry.Config{Service: "rtstack", Export: true})
	if err != nil {
		t.Fatal(err)
	}
	if !telemetry.Enabled() {
		t.Fatal("tracing is off after Setup with Export")
	}
	_, span := telemetry.Tracer("test").Start(context.Background(), "exported-span")
	span.End()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if telemetry.Enabled() {
		t.Error("tracing still on after shutdown")
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) == 0 {
		t.Fatal("the OTLP endpoint received nothing")
	}
	req := got[0]
	for _, want := range []string{"POST /v1/traces application/x-protobuf", "exported-span", "rtstack-under-test"} {
		if !strings.Contains(req, want) {
			t.Errorf("export request lacks %q: %.200q", want, req)
		}
	}
}

// Without Export, Setup installs nothing: no spans are recorded.
func TestSetupOffRecordsNothing(t *testing.T) {
	shutdown, err := telemetry.Setup(context.Background(), telemetry.Config{Service: "rtstack"})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = shutdown(context.Background()) }()
	if telemetry.Enabled() {
		t.Fatal("tracing on without Export")
	}
	_, span := telemetry.Tracer("test").Start(context.Background(), "dropped")
	defer span.End()
	if span.IsRecording() {
		t.Fatal("a span is recorded with tracing off")
	}
}
