// Package gateway serves the chat's WebSocket endpoint (GET /ws): it
// authenticates clients before the upgrade, turns their frames into commands
// (appended to the log through a Commands port before anything is
// acknowledged), and fans out what it reads from the tail of the log to the
// rooms' connections, in log order, with history recovery from a position.
//
// It owns the WebSocket sessions (one reader and one writer goroutine per
// connection, a bounded send queue packed into \n-separated frames), the
// room subscriptions, the log tail and the recovery reads, and the mapping of
// errors to client-facing codes (errors.go, the only such table).
//
// It imports commands, events, schemas, infra/kafka, projections (read types
// only) and gateway/auth. It must not import gateway/presence, gateway/api,
// the projection adapters or anything under cmd/: those are wired to it
// through the small interfaces declared in config.go.
package gateway
