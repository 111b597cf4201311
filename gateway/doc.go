// Package gateway serves the chat's WebSocket endpoint (GET /ws): it
// authenticates clients before the upgrade, turns their frames into commands
// (appended to the log through a Commands port before anything is
// acknowledged), and fans out what it reads from the tail of the log to the
// rooms' connections, in log order, with history recovery from a position.
//
// It owns the WebSocket sessions (one reader goroutine per connection; a
// writer goroutine only while there is something to write and briefly
// after, packing the send queue, bounded in frames and bytes, into
// \n-separated frames; pings on a timer; and the pipeline of room actions
// in flight: MaxInflight per connection, decided together and appended
// without waiting for each other, in order per room, by a goroutine per
// room only while that room has actions), what one
// connection and one user may cost (frame rates,
// connections per user, rooms and subscriptions per connection), the room
// subscriptions, the log tail and the recovery reads (which read the log
// only as fast as the client drains them), what a token
// allows on an open connection (its rooms claim, its expiry and refresh),
// and the mapping of errors to client-facing codes (gateway/clienterr, the
// only such table, shared with gateway/api).
//
// Wiring, in the composition root:
//
//	srv, err := gateway.New(gateway.Config{
//		Kafka: kafka.ClientConfig{Brokers: brokers}, Topic: topic, Codec: codec, Commands: handler,
//		Keys: keys, Boards: boards, Presence: presence, Signals: presence,
//		Logger: logger, Registerer: registry,
//	})
//	mux.Handle("GET /ws", srv)               // ServeHTTP
//	group.Go(func() error { return srv.Run(ctx) }) // the log tail and board refresh
//	// shutting down, first of all: stop accepting, flush acks, 1001 to clients
//	err = srv.Shutdown(shutdownCtx)
//
// The presence component calls srv.BroadcastPresence, srv.DeliverToUser and
// srv.BroadcastRoom (typing frames relayed from other gateways); the HTTP
// API may hand out srv.TopicID().
//
// It imports commands, events, schemas, infra/kafka, infra/telemetry (each
// action starts a trace), projections/view (the read types),
// gateway/clienterr, gateway/auth and internal/retry. It must
// not import gateway/presence, gateway/api, the projection adapters or
// anything under cmd/: those are wired to it through the small interfaces
// declared in config.go.
package gateway
