package gateway

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the gateway's Prometheus collectors. Labels are bounded: op,
// code, reason and refusal kinds come from fixed sets.
type metrics struct {
	connections     prometheus.Gauge
	actionsInFlight prometheus.Gauge
	deliveries      prometheus.Counter
	frames          prometheus.Counter
	drops           *prometheus.CounterVec
	errors          *prometheus.CounterVec
	refused         *prometheus.CounterVec
	appendSeconds   *prometheus.HistogramVec
	recoverySeconds prometheus.Histogram
	recoveryRecords prometheus.Counter
	fanoutSeconds   prometheus.Histogram
	resyncs         prometheus.Counter
	tailErrors      prometheus.Counter
	boardReads      prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	const ns, sub = "rtstack", "gateway"
	m := &metrics{
		connections: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "connections",
			Help: "Open WebSocket connections."}),
		actionsInFlight: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "actions_in_flight",
			Help: "Room actions (send, edit, delete, react) read from clients and not yet answered, over all connections; at most MAX_INFLIGHT per connection."}),
		deliveries: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "deliveries_total",
			Help: "Log events queued to connections by the live fanout."}),
		frames: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "frames_written_total",
			Help: "WebSocket data frames written (each may pack several objects)."}),
		drops: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "drops_total",
			Help: "Things not delivered, by reason: slow_client, duplicate, undecodable, misplaced (a record outside its room's partition), rate_limited, frame_too_big, forbidden_room (a frame for a user whose token does not allow its room)."}, []string{"reason"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "client_errors_total",
			Help: "Error frames sent to clients, by code."}, []string{"code"}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "refused_total",
			Help: "Upgrades refused, by reason: unauthorized, origin."}, []string{"reason"}),
		appendSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: ns, Subsystem: sub, Name: "append_seconds",
			Help:    "Time from a client action to the broker's acknowledgement, by op.",
			Buckets: prometheus.ExponentialBuckets(0.00005, 2, 16)}, []string{"op"}),
		recoverySeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: ns, Subsystem: sub, Name: "recovery_seconds",
			Help: "Time to replay the log for a join with since.", Buckets: prometheus.ExponentialBuckets(0.001, 2, 14)}),
		recoveryRecords: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "recovery_records_total",
			Help: "Log records read to serve joins with since (every record of the partition, not only the room's)."}),
		fanoutSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: ns, Subsystem: sub, Name: "fanout_seconds",
			Help:    "Time from the broker timestamp of the oldest record of a fetched batch to the batch queued to its subscribers.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16)}),
		resyncs: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "resyncs_total",
			Help: "Joins answered with resync."}),
		tailErrors: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "tail_errors_total",
			Help: "Fetch errors while tailing the log (the tail retries)."}),
		boardReads: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "board_reads_total",
			Help: "Re-reads of changed leaderboard and counters boards (one per changed board per interval, whatever the subscriber count; snapshots on subscribe not included)."}),
	}
	if reg == nil {
		return m, nil
	}
	var errs []error
	for _, c := range []prometheus.Collector{m.connections, m.actionsInFlight, m.deliveries, m.frames, m.drops, m.errors, m.refused,
		m.appendSeconds, m.recoverySeconds, m.recoveryRecords, m.fanoutSeconds, m.resyncs, m.tailErrors, m.boardReads} {
		if err := reg.Register(c); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("gateway metrics: %w", err)
	}
	return m, nil
}
