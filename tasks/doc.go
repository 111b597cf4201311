// Package tasks owns the side effects of the chat log (docs/architecture.md:
// side effects never re-fire on replay): the task types the reactor derives
// from events, their deterministic ids, and the webhook signature. Its subpackages carry them:
//
//   - tasks/rabbit: the RabbitMQ topology (main queue, one delay queue per
//     retry tier, the dead-letter queue), the publisher with confirms, and
//     the operator's DLQ commands (list, replay, purge).
//   - tasks/reactor: tails the log with its own consumer group and publishes
//     a task per webhook and per mention of each MessageSent, committing its
//     offsets only after RabbitMQ confirmed the tasks.
//   - tasks/worker: consumes tasks with manual acks, delivers them (signed
//     webhook POSTs, mention notifications), records each finished task id in
//     Postgres so a redelivered task is done once, and moves failures through
//     the retry tiers to the DLQ.
//
// Guarantees: at-least-once from the log into RabbitMQ; done once per task
// id (the completion record); at-least-once to webhook receivers, with the
// same X-Rtstack-Delivery id on every attempt so receivers can dedupe.
//
// tasks imports events only; the subpackages add schemas, infra/kafka,
// internal/egress (the webhook target rules) and the RabbitMQ, Postgres and
// HTTP clients. Nothing here imports commands, gateway or projections: the worker reaches online users
// through the small Notifier interface it declares.
package tasks
