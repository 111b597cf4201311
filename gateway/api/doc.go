// Package api serves rtstack's HTTP JSON API: message history, counters and
// leaderboards from the projections (with read-your-own-writes through
// ?after=PARTITION:OFFSET and the X-Rtstack-Position header), webhook
// registration through the command handler, admin rebuilds, and the
// /healthz and /readyz probes. docs/http.md describes the surface.
//
// It declares the small interfaces it reads and writes through (History,
// Counters, Leaderboard, Checkpoints, Webhooks, Rebuilder); the composition
// root wires the Postgres and Redis projections and the command handler to
// them. It imports commands, projections/view (the read types), events,
// gateway/clienterr and gateway/auth; never projections, its adapters, infra
// or the gateway package.
package api
