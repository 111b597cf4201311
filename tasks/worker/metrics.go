package worker

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/rtstack/rtstack/infra/prom"
	"github.com/rtstack/rtstack/tasks/rabbit"
)

type metrics struct {
	outcomes *prometheus.CounterVec
	seconds  *prometheus.HistogramVec
	queues   *rabbit.QueueStats // nil without a registerer
}

func newMetrics(reg prometheus.Registerer, rc rabbit.Config) (*metrics, error) {
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
	m.outcomes, err = prom.Register(reg, m.outcomes)
	if err != nil {
		return nil, err
	}
	m.seconds, err = prom.Register(reg, m.seconds)
	if err != nil {
		return nil, err
	}
	// The workers own the queues, so they report their depths.
	m.queues, err = prom.Register(reg, rabbit.NewQueueStats(rc))
	return m, err
}

func (m *metrics) outcome(kind, outcome string) { m.outcomes.WithLabelValues(kind, outcome).Inc() }

func (m *metrics) duration(kind string, d time.Duration) {
	m.seconds.WithLabelValues(kind).Observe(d.Seconds())
}
