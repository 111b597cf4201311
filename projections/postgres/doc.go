// Package postgres is the Postgres projection of the chat log: messages,
// reactions, members, rooms and webhooks, with the history and authorship
// queries the gateway and the command handler read.
//
// Versions are Postgres schemas (rtstack_v1, rtstack_v2, …); the control
// schema rtstack_control names the active one. Each Apply is one
// transaction that takes the active version under a shared advisory lock,
// locks the partition's checkpoint row, folds the records above it and moves
// it; Promote takes the same lock exclusively, so a blue/green swap is
// atomic for writers, and readers retry once when the version they looked
// up was dropped under them.
//
// It imports events, projections (the ports), projections/view (the read
// types) and pgx; never gateway, commands, tasks or another projection.
package postgres
