package telemetry_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/trace"

	"github.com/rtstack/rtstack/infra/telemetry"
)

func spanContext(t *testing.T) (context.Context, trace.SpanContext) {
	t.Helper()
	ctx := telemetry.Root(context.Background())
	sc := trace.SpanContextFromContext(ctx)
	if !sc.IsValid() {
		t.Fatalf("Root made no valid span context")
	}
	return ctx, sc
}

func TestHandlerStampsTraceIDs(t *testing.T) {
	ctx, sc := spanContext(t)
	tests := []struct {
		name     string
		ctx      context.Context
		group    string
		wantIDs  bool
		minLevel slog.Level
		level    slog.Level
		logged   bool
	}{
		{name: "traced context", ctx: ctx, wantIDs: true, level: slog.LevelInfo, logged: true},
		{name: "plain context", ctx: context.Background(), level: slog.LevelInfo, logged: true},
		{name: "traced, inside a group", ctx: ctx, group: "g", wantIDs: true, level: slog.LevelInfo, logged: true},
		{name: "below the level", ctx: ctx, minLevel: slog.LevelWarn, level: slog.LevelInfo, logged: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			log := slog.New(telemetry.NewHandler(&buf, tt.minLevel, false)).With("component", "test")
			if tt.group != "" {
				log = log.WithGroup(tt.group)
			}
			log.Log(tt.ctx, tt.level, "hello", "room", "lobby")
			if !tt.logged {
				if buf.Len() != 0 {
					t.Fatalf("logged below the level: %s", buf.String())
				}
				return
			}
			var line map[string]any
			if err := json.Unmarshal(buf.Bytes(), &line); err != nil {
				t.Fatalf("not one JSON line: %q: %v", buf.String(), err)
			}
			if line["msg"] != "hello" || line["component"] != "test" {
				t.Fatalf("line %v lost its message or attributes", line)
			}
			ids := line
			if tt.group != "" {
				ids, _ = line[tt.group].(map[string]any)
			}
			gotTrace, gotSpan := ids["trace_id"], ids["span_id"]
			if !tt.wantIDs {
				if gotTrace != nil || gotSpan != nil {
					t.Fatalf("ids on an untraced line: %v", line)
				}
				return
			}
			if gotTrace != sc.TraceID().String() || gotSpan != sc.SpanID().String() {
				t.Fatalf("trace_id %v span_id %v, want %s %s", gotTrace, gotSpan, sc.TraceID(), sc.SpanID())
			}
		})
	}
}

func TestHandlerWritesTextOnATerminal(t *testing.T) {
	ctx, sc := spanContext(t)
	var buf bytes.Buffer
	slog.New(telemetry.NewHandler(&buf, slog.LevelDebug, true)).DebugContext(ctx, "hello")
	out := buf.String()
	if strings.HasPrefix(out, "{") || !strings.Contains(out, "msg=hello") || !strings.Contains(out, "trace_id="+sc.TraceID().String()) {
		t.Fatalf("text line %q", out)
	}
}

// Root makes a fresh trace when tracing is off and keeps an existing one.
func TestRootKeepsAnIncomingTrace(t *testing.T) {
	ctx, sc := spanContext(t)
	if got := trace.SpanContextFromContext(telemetry.Root(ctx)); got.TraceID() != sc.TraceID() {
		t.Fatalf("Root replaced trace %s with %s", sc.TraceID(), got.TraceID())
	}
	_, other := spanContext(t)
	if other.TraceID() == sc.TraceID() {
		t.Fatalf("two roots share trace id %s", sc.TraceID())
	}
}
