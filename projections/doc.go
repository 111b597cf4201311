// Package projections owns the read side rebuilt from the chat log: the
// projector runtime (checkpoints, batching, parking undecodable records,
// replay, blue/green rebuild and swap) and the read types the gateway
// serves. Each projection lives in a subpackage named for what it stores
// (projections/postgres, projections/redis).
//
// Rule: a projection is a pure function of the log. It uses each event's own
// time, never the wall clock, and stores its checkpoint atomically with the
// state it wrote, so killing it at any instant loses and doubles nothing.
//
// It imports events (and schemas to decode); never gateway, commands or
// tasks.
package projections
