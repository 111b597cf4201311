// Package reactor turns the chat log into tasks (docs/architecture.md: side
// effects never re-fire on replay). It tails the log with its own consumer
// group, which no projection rebuild ever touches, and for each MessageSent
// publishes a webhook task per webhook of the room and a notify task per
// mentioned member of the room.
//
// Webhook registrations and room memberships are folded from the log
// itself: on each partition assignment the reactor reads the partition from
// offset zero, folding WebhookRegistered, WebhookRemoved, MemberJoined and
// MemberLeft events in memory, and emits tasks only for records at or after
// the group's committed offset. So a registration (or removal) is always
// known before the messages after it in its room, a record below the commit
// never fires again, and a mention notifies the mentioned user only if they
// were a member of the room at that point of the log (a pure function of the
// log, like a projection). Whether the user's token allows the room is
// checked where the notification is delivered: the gateway that holds the
// user's connection. Secrets stay sealed; a registration from before sealing
// is sealed with Config.Keyring before its secret enters a task.
//
// A record outside its room's partition (kafka.Placement: a producer with
// another partitioner than murmur2) is not part of the room's history: it is
// neither folded nor emitted for, and counted in
// rtstack_reactor_misplaced_records_total; the projectors park it.
//
// Offsets are committed only after RabbitMQ confirmed every task of the
// batch (at-least-once into RabbitMQ). While RabbitMQ is unreachable the
// reactor holds its batch, reconnects with backoff and publishes it again;
// the log does not advance meanwhile. Task ids are deterministic, so a batch
// published twice is done once by the workers.
//
// It imports events, schemas, infra/kafka, infra/prom, infra/telemetry (tasks
// carry their message's trace context), internal/keyring, tasks,
// tasks/rabbit and internal/retry; never gateway, projections or the worker.
package reactor
