// Package projections owns the read side rebuilt from the chat log: the
// projector runtime (checkpoints, batching, parking undecodable records,
// replay, blue/green rebuild and swap). The read types the gateway serves
// live in projections/view, so readers never link the runtime. Each
// projection lives in a subpackage named for what it stores
// (projections/postgres, projections/redis).
//
// Rule: a projection is a pure function of the log. It uses each event's own
// time, never the wall clock, and stores its checkpoint atomically with the
// state it wrote, so killing it at any instant loses and doubles nothing.
//
// Runtime: NewProjector(Config).Run(ctx) is a consumer-group member with one
// goroutine per assigned partition, each seeking to the Store's checkpoint
// on assignment; records that do not decode or are outside their room's
// partition (kafka.Placement) go to the parking topic, each projection
// parking its own copy; store errors
// are retried with backoff unless the store's Classifier calls them
// permanent, which stops Run with ErrPermanent. Rebuild replays the whole
// log into a new version of a Versioned projection and swaps it in, with
// the same applier and drain loop; NewProgress reports a rebuild to a
// person. Every Versioned store passes projectionstest.Contract.
//
// It imports events, schemas (to decode), infra/kafka (clients, topic,
// end offsets), infra/prom (metrics), infra/telemetry (a span per record
// applied, when tracing is on) and internal/retry (backoff); never
// gateway, commands or tasks.
package projections
