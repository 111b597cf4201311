// Package dedupe stores the outcome of idempotent commands in Redis, shared
// by every gateway: the log position a client's message was appended at,
// under its idempotency key, for a bounded time. It implements
// commands.Outcomes and commands.Claimer (a claim before the append makes
// two sends of one client id at once append once).
//
// It imports commands, events and go-redis; never projections or the
// gateway package.
package dedupe
