// Package rabbit is the RabbitMQ adapter of tasks: the topology, the
// publisher with confirms, the message encoding (task JSON in the body,
// attempt and last error in headers), and the operator's dead-letter
// commands.
//
// Topology (all durable, on the default exchange, names under a prefix,
// "rtstack." by default):
//
//	PREFIXtasks ──(worker fails, attempt n < N)──► PREFIXtasks.delay.<D_n>   x-message-ttl = D_n
//	    ▲                                                   │ expires
//	    └──────────── x-dead-letter-routing-key ◄───────────┘
//	PREFIXtasks ──(attempt N fails, permanent error, or undecodable)──► PREFIXtasks.dead
//
// Delay queues are named by their delay, so changing RETRY_DELAYS declares
// new queues instead of clashing with the arguments of old ones.
//
// It imports tasks and amqp091-go; never the reactor, the worker, gateway or
// projections.
package rabbit
