package presence

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the Tracker's collectors. Labels are bounded: op is one of
// join, leave, heartbeat, sweep, notify; cause is join, leave or sweep.
type metrics struct {
	announced *prometheus.CounterVec
	swept     prometheus.Counter
	errors    *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer, local func() float64) (*metrics, error) {
	const ns, sub = "rtstack", "presence"
	m := &metrics{
		announced: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "transitions_total",
			Help: "0↔1 transitions of a user in a room this gateway announced, by cause: join, leave, sweep."}, []string{"cause"}),
		swept: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "swept_total",
			Help: "Expired connection entries (of any gateway) this gateway processed in sweeps."}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "errors_total",
			Help: "Failed Redis operations, by op: join, leave, heartbeat, sweep, notify."}, []string{"op"}),
	}
	if reg == nil {
		return m, nil
	}
	conns := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "local_connections",
		Help: "Room memberships of connections this gateway holds."}, local)
	var errs []error
	for _, c := range []prometheus.Collector{m.announced, m.swept, m.errors, conns} {
		if err := reg.Register(c); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("presence metrics: %w", err)
	}
	return m, nil
}
