package worker

import (
	"errors"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	outcomes *prometheus.CounterVec
	seconds  *prometheus.HistogramVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		outcomes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rtstack_worker_tasks_total",
			Help: "Task deliveries handled, by kind and outcome (done, skipped, retry, dead, requeued).",
		}, []string{"kind", "outcome"}),
		seconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "rtstack_worker_attempt_seconds",
			Help:    "Time of one attempt at a task, by kind.",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 9),
		}, []string{"kind"}),
	}
	if reg == nil {
		return m, nil
	}
	var err error
	m.outcomes, err = register(reg, m.outcomes)
	if err != nil {
		return nil, err
	}
	m.seconds, err = register(reg, m.seconds)
	return m, err
}

// register registers c, or returns the collector already registered under
// its name (several workers in one process share one set of metrics).
func register[C prometheus.Collector](reg prometheus.Registerer, c C) (C, error) {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing, nil
			}
		}
		return c, fmt.Errorf("register worker metrics: %w", err)
	}
	return c, nil
}

func (m *metrics) outcome(kind, outcome string) { m.outcomes.WithLabelValues(kind, outcome).Inc() }

func (m *metrics) duration(kind string, d time.Duration) {
	m.seconds.WithLabelValues(kind).Observe(d.Seconds())
}
