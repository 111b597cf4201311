package reactor

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/rtstack/rtstack/infra/prom"
	"github.com/twmb/franz-go/pkg/kmsg"
)

type (
	kmsgReq  = kmsg.OffsetCommitRequest
	kmsgResp = kmsg.OffsetCommitResponse
)

type metrics struct {
	records         *prometheus.CounterVec
	published       *prometheus.CounterVec
	decodeErrors    prometheus.Counter
	misplaced       prometheus.Counter
	publishFailures prometheus.Counter
	truncated       prometheus.Counter
	mentionsSkipped prometheus.Counter
	lag             *prometheus.GaugeVec // partition
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		records: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rtstack_reactor_records_total",
			Help: "Log records read by the reactor, by phase: fold (below the commit: registrations and memberships only) or emit.",
		}, []string{"phase"}),
		published: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rtstack_reactor_tasks_published_total",
			Help: "Tasks published and confirmed by RabbitMQ, by kind.",
		}, []string{"kind"}),
		decodeErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "rtstack_reactor_decode_errors_total",
			Help: "Records the reactor could not decode and skipped.",
		}),
		misplaced: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "rtstack_reactor_misplaced_records_total",
			Help: "Records outside their room's partition (a producer with another partitioner), skipped: no task, no fold.",
		}),
		publishFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "rtstack_reactor_publish_failures_total",
			Help: "Task batches RabbitMQ did not confirm (each retried after a reconnect).",
		}),
		truncated: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "rtstack_reactor_log_truncated_total",
			Help: "Times the reactor found its committed offsets beyond the log's end (the log lost its tail).",
		}),
		mentionsSkipped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "rtstack_reactor_mentions_skipped_total",
			Help: "Mentions of users who were not members of the room, which notify nobody.",
		}),
		lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "rtstack_reactor_lag_records",
			Help: "Records between the partition's high watermark and the reactor's committed position, after each handled fetch.",
		}, []string{"partition"}),
	}
	if reg == nil {
		return m, nil
	}
	var err error
	if m.records, err = prom.Register(reg, m.records); err != nil {
		return nil, err
	}
	if m.published, err = prom.Register(reg, m.published); err != nil {
		return nil, err
	}
	if m.decodeErrors, err = prom.Register(reg, m.decodeErrors); err != nil {
		return nil, err
	}
	if m.misplaced, err = prom.Register(reg, m.misplaced); err != nil {
		return nil, err
	}
	if m.publishFailures, err = prom.Register(reg, m.publishFailures); err != nil {
		return nil, err
	}
	if m.truncated, err = prom.Register(reg, m.truncated); err != nil {
		return nil, err
	}
	if m.mentionsSkipped, err = prom.Register(reg, m.mentionsSkipped); err != nil {
		return nil, err
	}
	if m.lag, err = prom.Register(reg, m.lag); err != nil {
		return nil, err
	}
	return m, nil
}

// setLag records p's lag after its records up to last were handled;
// committed is the group's offset when p was assigned (the reactor folds
// below it and emits from it).
func (m *metrics) setLag(p int32, highWatermark, last, committed int64) {
	m.lag.WithLabelValues(strconv.Itoa(int(p))).Set(float64(max(highWatermark-max(last+1, committed), 0)))
}

func (m *metrics) forget(p int32) { m.lag.DeleteLabelValues(strconv.Itoa(int(p))) }
