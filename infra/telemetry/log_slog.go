package telemetry

import (
	"context"
	"io"
	"log/slog"

	"go.opentelemetry.io/otel/trace"
)

// NewHandler returns the process's slog handler: JSON lines, or text when
// terminal is true (a person reading stderr), at level, each record of a
// context carrying a span stamped with trace_id and span_id.
func NewHandler(w io.Writer, level slog.Leveler, terminal bool) slog.Handler {
	opts := &slog.HandlerOptions{Level: level}
	if terminal {
		return WithTraceIDs(slog.NewTextHandler(w, opts))
	}
	return WithTraceIDs(slog.NewJSONHandler(w, opts))
}

// WithTraceIDs wraps h so that a record logged with a context carrying a
// valid span context (logger.InfoContext(ctx, …)) gets trace_id and span_id
// attributes, which join log lines to traces.
func WithTraceIDs(h slog.Handler) slog.Handler { return traceHandler{h} }

type traceHandler struct{ slog.Handler }

func (h traceHandler) Handle(ctx context.Context, r slog.Record) error {
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
		r = r.Clone()
		r.AddAttrs(slog.String("trace_id", sc.TraceID().String()), slog.String("span_id", sc.SpanID().String()))
	}
	return h.Handler.Handle(ctx, r)
}

func (h traceHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return traceHandler{h.Handler.WithAttrs(as)}
}

func (h traceHandler) WithGroup(name string) slog.Handler {
	return traceHandler{h.Handler.WithGroup(name)}
}
