package main

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/rtstack/rtstack/events"
	"github.com/rtstack/rtstack/infra/kafka"
	"github.com/rtstack/rtstack/infra/kafka/kafkatest"
	"github.com/rtstack/rtstack/infra/telemetry"
	"github.com/rtstack/rtstack/internal/testsvc"
)

// traceTarget is a webhook receiver that records the traceparent of each
// delivery.
type traceTarget struct {
	*httptest.Server
	mu     sync.Mutex // guards parent
	parent []string
}

func newTraceTarget(t *testing.T) *traceTarget {
	t.Helper()
	h := &traceTarget{}
	h.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.mu.Lock()
		h.parent = append(h.parent, r.Header.Get("traceparent"))
		h.mu.Unlock()
	}))
	t.Cleanup(h.Close)
	return h
}

func (h *traceTarget) parents() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.parent)
}

// hookedRoom runs rtstack dev in process, registers a webhook of room at a
// new target, and returns alice joined to room.
func hookedRoom(t *testing.T, room string) (*devEnv, *traceTarget, *wsClient) {
	t.Helper()
	d := newDevEnv(t)
	runDevInProcess(t, d)
	hook := newTraceTarget(t)
	if code := d.postWith(t, d.token(t, "admin", true), "/api/rooms/"+room+"/webhooks",
		map[string]string{"url": hook.URL, "secret": "s3cret"}, nil); code != http.StatusCreated {
		t.Fatalf("register webhook: HTTP %d", code)
	}
	c := d.dial(t, "alice")
	c.send(map[string]any{"type": "join", "room": room})
	c.awaitJoin("alice")
	return d, hook, c
}

// runDevInProcess runs `rtstack dev` in this process (so it records spans
// into this test's provider) with d's settings as flags, until the test
// ends.
func runDevInProcess(t *testing.T, d *devEnv) {
	t.Helper()
	args := []string{"dev"}
	for _, kv := range d.env {
		k, v, _ := strings.Cut(kv, "=")
		args = append(args, "-"+strings.ReplaceAll(strings.ToLower(k), "_", "-")+"="+v)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var stderr testsvc.Buffer
	done := make(chan int, 1)
	go func() { done <- run(ctx, args, &stderr, &stderr) }()
	t.Cleanup(func() {
		cancel()
		if code := <-done; code != exitOK || t.Failed() {
			t.Logf("rtstack dev exited %d:\n%s", code, stderr.String())
		}
	})
	testsvc.Eventually(t, 60*time.Second, "rtstack dev ready", func() bool {
		resp, err := http.Get("http://" + d.httpAddr + "/readyz")
		if err != nil {
			return false
		}
		_ = resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
}

// One send is one trace: the gateway's span, the append to the log, each
// projector's, the reactor's and the worker's spans share its trace id, and
// the webhook target receives a traceparent of that trace.
func TestSendIsOneTrace(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	t.Cleanup(telemetry.Install(tp))
	_, hook, c := hookedRoom(t, "traced")
	c.send(map[string]any{"type": "send", "room": "traced", "text": "follow me", "client_id": "c1"})
	c.await("ack")

	testsvc.Eventually(t, 30*time.Second, "the webhook delivery", func() bool { return len(hook.parents()) > 0 })
	parent := hook.parents()[0]
	f := strings.Split(parent, "-")
	if len(f) != 4 || len(f[1]) != 32 {
		t.Fatalf("webhook traceparent %q", parent)
	}
	traceID := f[1]
	want := []string{"ws send", "chat.events publish", "postgres project", "redis project", "reactor emit", "worker webhook", "HTTP POST"}
	var spans tracetest.SpanStubs
	testsvc.Eventually(t, 20*time.Second, "every span of the send's trace", func() bool {
		spans = ofTrace(exp.GetSpans(), traceID)
		for _, name := range want {
			if !slices.ContainsFunc(spans, func(s tracetest.SpanStub) bool { return s.Name == name }) {
				return false
			}
		}
		return true
	})
	byID := map[trace.SpanID]string{}
	for _, s := range spans {
		byID[s.SpanContext.SpanID()] = s.Name
	}
	var out strings.Builder
	for _, s := range spans {
		parentName := "(root)"
		if s.Parent.IsValid() {
			parentName = byID[s.Parent.SpanID()]
		}
		fmt.Fprintf(&out, "\n  %-22s parent %-22s trace %s span %s", s.Name, parentName, s.SpanContext.TraceID(), s.SpanContext.SpanID())
	}
	t.Logf("the send's trace, as the in-memory exporter saw it:%s", out.String())
	// The chain is unbroken: every span but the root has its parent in the
	// trace, and the target's parent is the worker's HTTP client span.
	for _, s := range spans {
		if s.Name != "ws send" && byID[s.Parent.SpanID()] == "" {
			t.Errorf("span %q has a parent %s outside the trace", s.Name, s.Parent.SpanID())
		}
	}
	if name := byID[mustSpanID(t, f[2])]; name != "HTTP POST" {
		t.Errorf("the webhook's traceparent names span %q, want the worker's HTTP POST", name)
	}
}

func ofTrace(all tracetest.SpanStubs, traceID string) tracetest.SpanStubs {
	var out tracetest.SpanStubs
	for _, s := range all {
		if s.SpanContext.TraceID().String() == traceID {
			out = append(out, s)
		}
	}
	return out
}

func mustSpanID(t *testing.T, s string) trace.SpanID {
	t.Helper()
	id, err := trace.SpanIDFromHex(s)
	if err != nil {
		t.Fatalf("span id %q: %v", s, err)
	}
	return id
}

// With tracing off nothing is recorded, but each send still gets its own
// trace id, carried in its record's traceparent header through the tasks
// to the webhook target.
func TestTraceContextTravelsWithTracingOff(t *testing.T) {
	if telemetry.Enabled() {
		t.Fatal("tracing is on in this process")
	}
	d, hook, c := hookedRoom(t, "untraced")
	for i := range 2 {
		c.send(map[string]any{"type": "send", "room": "untraced", "text": "hi", "client_id": fmt.Sprintf("c%d", i)})
		c.await("ack")
	}
	testsvc.Eventually(t, 30*time.Second, "two webhook deliveries", func() bool { return len(hook.parents()) >= 2 })
	got := map[string]bool{}
	for _, p := range hook.parents() {
		sc := parseParent(t, p)
		got[sc.TraceID().String()] = true
	}
	logged := sentTraceIDs(t, d.brokerAddr, 2)
	t.Logf("trace ids in the log %v, at the webhook target %v", logged, got)
	if len(got) != 2 || len(logged) != 2 {
		t.Fatalf("%d trace ids at the target, %d in the log; want one per send (2)", len(got), len(logged))
	}
	for id := range logged {
		if !got[id] {
			t.Errorf("trace %s of a logged MessageSent never reached the webhook target", id)
		}
	}
}

func parseParent(t *testing.T, p string) trace.SpanContext {
	t.Helper()
	f := strings.Split(p, "-")
	if len(f) != 4 || len(f[1]) != 32 {
		t.Fatalf("traceparent %q", p)
	}
	id, err := trace.TraceIDFromHex(f[1])
	if err != nil {
		t.Fatalf("traceparent %q: %v", p, err)
	}
	return trace.NewSpanContext(trace.SpanContextConfig{TraceID: id, SpanID: mustSpanID(t, f[2])})
}

// sentTraceIDs reads the log until it saw n MessageSent records and
// returns the trace ids of their traceparent headers.
func sentTraceIDs(t *testing.T, addr string, n int) map[string]bool {
	t.Helper()
	cl := kafkatest.Client(t, addr, kgo.ConsumeTopics(kafka.DefaultTopic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	out := map[string]bool{}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for seen := 0; seen < n; {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("%d MessageSent records in the log, want %d", seen, n)
		}
		fs.EachRecord(func(r *kgo.Record) {
			if kafka.EventType(r) != events.TypeMessageSent {
				return
			}
			seen++
			for _, h := range r.Headers {
				if h.Key == "traceparent" {
					out[parseParent(t, string(h.Value)).TraceID().String()] = true
				}
			}
		})
	}
	return out
}
