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
// Webhook targets and NotifyURL are dialled through a guard that refuses
// every address outside global unicast after DNS resolution unless
// AllowPrivate is set. A webhook task carries its secret sealed; the worker
// opens it with its keyring to sign, and a secret it cannot open is a
// permanent failure.
//
// It imports tasks, tasks/rabbit, infra/prom, infra/telemetry (a task
// continues its trace; webhook calls send traceparent), internal/retry
// (backoff), internal/egress (the target rules, shared with the registration
// path) and internal/keyring (to open sealed secrets); never commands,
// gateway or projections: online users are reached through the Notifier
// interface.
package worker
