// Package kafka sets up franz-go clients for the chat log, runs the embedded
// Kafka-protocol broker (kfake with DataDir persistence), creates the topic,
// appends events, tails the log from given positions, and prints it as JSON
// lines for people (LogReader, DecodeFramed).
//
// It is the only package that knows the record layout: key = room, value =
// Confluent wire format, headers event-type and event-id. NewRecord writes
// it; Partitioner, RoomPartitioner, InRoom, EventType and EventID read
// it for everyone else (record.go). Placement is the one predicate every
// consumer decodes through: a record outside its room's murmur2 partition
// is refused as misplaced (placement.go).
//
// It imports events, schemas (the codec) and infra/telemetry (records carry
// their trace context in headers) only, besides franz-go.
package kafka
