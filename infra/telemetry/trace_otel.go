package telemetry

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync/atomic"

	"go.opentelemetry.io/contrib/exporters/autoexport"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// Config configures Setup.
type Config struct {
	// Service names the process in every span (service.name), e.g.
	// "rtstack-gateway"; OTEL_SERVICE_NAME overrides it. Required.
	Service string
	// Export turns tracing on: spans are batched to the exporter the
	// OTEL_* variables select (OTLP over http/protobuf or grpc). The
	// composition root sets it when OTEL_EXPORTER_OTLP_ENDPOINT or
	// OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is set.
	Export bool
}

// enabled: a recording tracer provider is installed.
var enabled atomic.Bool

// Enabled reports whether spans are recorded, so per-record instrumentation
// is installed only then.
func Enabled() bool { return enabled.Load() }

// propagator is the W3C trace context (and baggage) everywhere.
var propagator = propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})

// Propagator returns the text map propagator every carrier (Kafka headers,
// AMQP headers, HTTP headers) uses.
func Propagator() propagation.TextMapPropagator { return propagator }

// Setup installs the W3C propagator and, with cfg.Export, an SDK tracer
// provider batching to the OTLP exporter the standard variables describe.
// The returned shutdown flushes and stops it and puts the no-op provider
// back (nothing when off); call it once, at the end, with a bounded
// context.
func Setup(ctx context.Context, cfg Config) (shutdown func(context.Context) error, err error) {
	otel.SetTextMapPropagator(propagator)
	if !cfg.Export {
		return func(context.Context) error { return nil }, nil
	}
	if cfg.Service == "" {
		return nil, errors.New("telemetry: no service name")
	}
	exp, err := autoexport.NewSpanExporter(ctx)
	if err != nil {
		return nil, fmt.Errorf("telemetry: span exporter: %w", err)
	}
	// Later options win: OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES
	// override the default name.
	res, err := resource.New(ctx, resource.WithTelemetrySDK(), resource.WithHost(),
		resource.WithAttributes(attribute.String("service.name", cfg.Service)), resource.WithFromEnv())
	if err != nil {
		return nil, fmt.Errorf("telemetry: resource: %w", err)
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res))
	restore := Install(tp)
	return func(ctx context.Context) error {
		defer restore()
		return tp.Shutdown(ctx)
	}, nil
}

// Install makes tp the global tracer provider and turns tracing on; restore
// puts back the provider and state from before. Setup calls it; tests call
// it with an in-memory exporter's provider.
func Install(tp trace.TracerProvider) (restore func()) {
	old, wasOn := otel.GetTracerProvider(), enabled.Load()
	otel.SetTracerProvider(tp)
	otel.SetTextMapPropagator(propagator)
	enabled.Store(true)
	return func() {
		if !wasOn {
			old = noop.NewTracerProvider() // the default delegates to the one set: it cannot be set back
		}
		otel.SetTracerProvider(old)
		enabled.Store(wasOn)
	}
}

// Root returns ctx ready to start a new trace from: unchanged when it
// already carries a span context or tracing is on (the SDK makes the ids);
// otherwise with a remote, unsampled span context of fresh random ids, so
// the no-op tracer's spans carry one trace id through the log and the
// tasks at the cost of two random numbers. The ids need to be unique, not
// secret.
func Root(ctx context.Context) context.Context {
	if Enabled() || trace.SpanContextFromContext(ctx).IsValid() {
		return ctx
	}
	var tid trace.TraceID
	var sid trace.SpanID
	binary.BigEndian.PutUint64(tid[:8], rand.Uint64())  //nolint:gosec // G404: trace ids, not secrets
	binary.BigEndian.PutUint64(tid[8:], rand.Uint64())  //nolint:gosec // G404: trace ids, not secrets
	binary.BigEndian.PutUint64(sid[:], rand.Uint64()|1) //nolint:gosec // G404: span ids, not secrets; |1: never all zero
	return trace.ContextWithRemoteSpanContext(ctx, trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid, Remote: true}))
}

// Tracer returns the tracer of an instrumentation scope (the package path)
// from the global provider as it is now: the no-op one unless tracing is
// on. Call it at each use rather than keeping the tracer, so a provider
// installed later (Install) is the one used.
func Tracer(scope string) trace.Tracer { return otel.GetTracerProvider().Tracer(scope) }

// EndSpans ends spans, marking each failed with err when it is not nil.
func EndSpans(spans []trace.Span, err error) {
	for _, s := range spans {
		if err != nil {
			s.SetStatus(codes.Error, err.Error())
		}
		s.End()
	}
}
