// Package loadgen is rtstack's load generator: it opens many WebSocket
// clients against a gateway (or anything that speaks its join/send/ack and
// message frames), joins them to rooms, sends at a target rate (open loop)
// or with a window of messages in flight per sender (closed loop), and
// reports throughput, send→ack and send→delivery latency percentiles,
// errors by code, disconnects and its own CPU time, so a user can tell
// whether the generator or the server is the bottleneck.
//
// It speaks only the public WebSocket protocol and imports no other rtstack
// package: tokens come from a function the caller supplies.
package loadgen
