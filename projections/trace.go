package projections

import (
	"context"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel/trace"

	"github.com/rtstack/rtstack/infra/kafka"
	"github.com/rtstack/rtstack/infra/telemetry"
)

// tracer is looked up at each use: the provider is installed after package init.
func tracer() trace.Tracer { return telemetry.Tracer("github.com/rtstack/rtstack/projections") }

// startSpans starts one "<projection> project" span per record from next
// on, each a child of the trace its record carries, when tracing is on;
// nil (and no work per record) when it is off.
func (a *applier) startSpans(ctx context.Context, recs []*kgo.Record, next int64) []trace.Span {
	if !telemetry.Enabled() {
		return nil
	}
	spans := make([]trace.Span, 0, len(recs))
	for _, r := range recs {
		if r.Offset < next {
			continue
		}
		_, span := tracer().Start(kafka.TraceContext(ctx, r), a.name+" project",
			trace.WithSpanKind(trace.SpanKindConsumer), trace.WithAttributes(
				kafka.PartitionAttr(r.Partition), kafka.OffsetAttr(r.Offset)))
		spans = append(spans, span)
	}
	return spans
}
