// Package telemetry is rtstack's observability set-up shared by every role:
// the OpenTelemetry tracer provider and W3C propagator (Setup, Install),
// cheap trace ids when tracing is off (Root), and the slog handler that
// writes JSON or text and stamps trace ids on log lines (NewHandler).
//
// Tracing is on when an OTLP endpoint is configured (the standard OTEL_*
// variables, read by the OpenTelemetry exporters themselves) or a provider
// was installed (tests); otherwise the global tracer provider stays the
// no-op one and instrumentation that costs per record (franz-go's kotel
// hooks) is not installed. The W3C trace context travels either way: it is
// carried in Kafka record headers and AMQP headers, so one send keeps one
// trace id from the WebSocket to the webhook target.
//
// It imports only OpenTelemetry and the standard library; cmd wires it, and
// infra/kafka, gateway, projections and tasks read Enabled and Root.
package telemetry
