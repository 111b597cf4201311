// Package view holds the read-side types the projections answer with and
// the gateway and the HTTP API serve: history messages, room counters and
// leaderboard rows. Readers depend on these shapes, not on the projector
// runtime, so the gateway never links the stores or the runtime.
//
// It imports only the standard library (events at most); projections, its
// stores, gateway and gateway/api import it.
package view
