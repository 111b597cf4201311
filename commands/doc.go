// Package commands validates chat commands and decides the events they
// become, then appends them through a small Log interface.
//
// It owns the command types (imperative: SendMessage, EditMessage, …), the
// rules every command must pass before it may reach the log (sizes, room
// names, UTF-8, authorship), and idempotency: a SendMessage's message id is
// derived from room, user and client id, and a resent command returns the
// first append's position instead of appending again.
//
// It imports events and internal/egress (the webhook target rules, shared
// with the worker that delivers them) only; adapters (Kafka, Redis,
// Postgres) are injected.
package commands
