// Package kafka sets up franz-go clients for the chat log, runs the embedded
// Kafka-protocol broker (kfake with DataDir persistence), creates the topic,
// appends events and tails the log from given positions.
//
// It is the only package that knows the record layout: key = room, value =
// Confluent wire format, headers event-type and event-id.
package kafka
