// Package worker performs tasks from RabbitMQ: signed webhook POSTs and
// mention notifications.
//
// Each delivery is acknowledged by hand, only after its outcome is durable:
// done (the task id recorded in Postgres, rtstack_tasks.done), retried (the
// task republished, confirmed, to the delay queue of its attempt with the
// error), or dead (published to the DLQ with the attempt count and the last
// error). A failure retrying cannot fix goes to the DLQ at once: a target
// answering a 4xx other than 408 and 429, a private target, a bad URL, an
// undecodable task. A task id already recorded is acknowledged without doing it again,
// so a redelivered or replayed task is done once. A worker killed mid-task
// leaves the delivery unacknowledged and RabbitMQ hands it to another: the
// receiver may see that attempt twice, with the same X-Rtstack-Delivery id.
//
// Webhook targets are dialled through a guard that refuses loopback and
// private addresses after DNS resolution unless AllowPrivate is set.
//
// It imports tasks, tasks/rabbit, infra/prom, infra/telemetry (a task continues
// its trace; webhook calls send traceparent), internal/retry (backoff) and
// internal/egress (the webhook target rules, shared with the registration
// path); never commands,
// gateway or projections: online users are reached through the Notifier
// interface.
package worker
