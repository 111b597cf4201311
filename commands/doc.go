// Package commands validates chat commands and decides the events they
// become, then appends them through a small Log interface.
//
// It owns the command types (imperative: SendMessage, EditMessage, …), the
// rules every command must pass before it may reach the log (sizes, room
// names, UTF-8, authorship), and idempotency: a SendMessage's message id is
// derived from room, user and client id, and a resent command returns the
// first append's position instead of appending again (a Claimer makes that
// atomic across connections and gateways). Webhook secrets are sealed
// (Sealer) before a registration reaches the log.
//
// It imports events, internal/egress (the webhook target rules, shared
// with the worker that delivers them), internal/retry (the backoff of a
// send waiting for a concurrent one) and the Unicode libraries (uniseg,
// gomoji) for the emoji rule; adapters (Kafka, Redis, Postgres, the
// keyring) are injected.
package commands
