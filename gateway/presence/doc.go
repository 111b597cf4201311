// Package presence tracks who is online in which room, in Redis, shared by
// every gateway, and fans notifications out to the gateway that holds a
// user's connections.
//
// Presence is ephemeral: it is never written to the log and never replayed.
// Each connection in a room is a member of a Redis sorted set scored by its
// deadline (Redis server time + TTL); the gateway holding it refreshes the
// deadline every Heartbeat, and any gateway's sweeper removes connections
// whose deadline passed, so the connections of a crashed gateway vanish
// after TTL and presence heals. Joins, leaves, refreshes and sweeps are Lua
// scripts, so the 0↔1 transition of a user in a room is decided atomically
// across gateways and announced once, on a pub/sub channel, with the room's
// full user list. A second tab (or a second gateway) of an online user
// announces nothing. Signal carries other ephemeral room frames (typing) the
// same way, to the gateways holding a connection in the room.
//
// It imports go-redis, the Prometheus client and the standard library only: never commands,
// projections or the gateway package (the gateway depends on it through a
// small interface).
package presence
