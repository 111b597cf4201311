package reactor

import (
	"context"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/rtstack/rtstack/infra/kafka"
	"github.com/rtstack/rtstack/infra/telemetry"
	"github.com/rtstack/rtstack/tasks"
)

// tracer is looked up at each use: the provider is installed after package init.
func tracer() trace.Tracer { return telemetry.Tracer("github.com/rtstack/rtstack/tasks/reactor") }

// traceTasks starts the "reactor emit" span of the message rec carries, a
// child of the message's trace, and stamps its context on every task, so
// the workers continue the same trace (with tracing off, the message's
// trace id travels on unchanged).
func traceTasks(ctx context.Context, rec *kgo.Record, ts []tasks.Task) trace.Span {
	sctx, span := tracer().Start(kafka.TraceContext(ctx, rec), "reactor emit", trace.WithSpanKind(trace.SpanKindProducer),
		trace.WithAttributes(kafka.PartitionAttr(rec.Partition), kafka.OffsetAttr(rec.Offset)))
	for i := range ts {
		carrier := propagation.MapCarrier{}
		telemetry.Propagator().Inject(sctx, carrier)
		if len(carrier) > 0 {
			ts[i].Trace = carrier
		}
	}
	return span
}
