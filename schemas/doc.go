// Package schemas owns the Avro schemas of the chat log and the codec that
// turns events into records and back.
//
// Every version of every schema is kept in avro/ as
// NNN-Type-vV.avsc, where NNN is the schema's id in rtstack's own registry:
// ids never change once a file is committed, so records written years ago
// still name their writer schema. Records use the Confluent wire format
// (0x00, 4-byte big-endian schema id, Avro body); a reader resolves the
// writer's schema against the newest version of the type, so old events read
// with the defaults of newer fields.
//
// Codec.Decode is the one way a consumer reads a record, and it is strict,
// so every consumer refuses the same records with the same Reason (see
// DecodeError). Registry.Handler serves the Confluent Schema Registry API
// over the embedded schemas, with record-name subjects.
//
// When a Confluent-compatible registry is configured, Registry.Sync
// registers the embedded schemas there and uses the ids it assigns instead.
//
// It imports events and the Avro library; never projections, gateway or
// infra.
package schemas
