// Package kafka sets up franz-go clients for the chat log, runs the embedded
// Kafka-protocol broker (kfake with DataDir persistence), creates the topic,
// appends events, tails the log from given positions, and prints it as JSON
// lines for people (LogReader, DecodeFramed).
//
// It is the only package that knows the record layout: key = room, value =
// Confluent wire format, headers event-type and event-id. NewRecord writes
// it; Partitioner, RoomPartitioner, InRoom, EventType and EventID read
// it for everyone else (record.go).
//
// It imports events and schemas (the codec) only, besides franz-go.
package kafka
