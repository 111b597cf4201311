package projections

import (
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/rtstack/rtstack/infra/prom"
	"github.com/rtstack/rtstack/schemas"
)

// metrics are the runtime's Prometheus collectors. Labels stay bounded:
// projection name and partition number only.
type metrics struct {
	applied    *prometheus.CounterVec   // projection
	parked     *prometheus.CounterVec   // projection, reason
	errors     *prometheus.CounterVec   // projection
	resets     *prometheus.CounterVec   // projection
	truncated  *prometheus.CounterVec   // projection
	lag        *prometheus.GaugeVec     // projection, partition
	age        *prometheus.GaugeVec     // projection, partition
	latency    *prometheus.HistogramVec // projection
	batchSizes *prometheus.HistogramVec // projection
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		applied: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rtstack_projection_records_applied_total",
			Help: "Log records folded into a projection (records below the checkpoint are not counted).",
		}, []string{"projection"}),
		parked: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rtstack_projection_records_parked_total",
			Help: "Log records refused (undecodable, or misplaced: outside their room's partition), copied to the parking topic and skipped, by reason.",
		}, []string{"projection", "reason"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rtstack_projection_apply_errors_total",
			Help: "Failed Apply calls (each is retried with backoff, unless the store calls the error permanent).",
		}, []string{"projection"}),
		resets: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rtstack_projection_store_resets_total",
			Help: "Apply calls that found the store had lost its state (ErrStoreReset): the partition re-seeks to the store's checkpoint.",
		}, []string{"projection"}),
		truncated: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rtstack_projection_log_truncated_total",
			Help: "Times a projector found the projection's checkpoint beyond the log's end (the log lost its tail): it stops, and rtstack dev rebuilds the projection.",
		}, []string{"projection"}),
		lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "rtstack_projection_lag_records",
			Help: "Records between the partition's end offset and the projection's checkpoint.",
		}, []string{"projection", "partition"}),
		age: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "rtstack_projection_age_seconds",
			Help: "Wall clock minus the event time of the last applied event while records wait; 0 on a caught-up partition.",
		}, []string{"projection", "partition"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "rtstack_projection_apply_seconds",
			Help:    "Duration of one successful Apply (one batch, one transaction).",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
		}, []string{"projection"}),
		batchSizes: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "rtstack_projection_batch_records",
			Help:    "Records per Apply.",
			Buckets: prometheus.ExponentialBuckets(1, 4, 9),
		}, []string{"projection"}),
	}
	if reg == nil {
		return m, nil
	}
	var err error
	// Several projections share one registry: reuse what another registered.
	m.applied, err = prom.Register(reg, m.applied)
	if err == nil {
		m.parked, err = prom.Register(reg, m.parked)
	}
	if err == nil {
		m.errors, err = prom.Register(reg, m.errors)
	}
	if err == nil {
		m.resets, err = prom.Register(reg, m.resets)
	}
	if err == nil {
		m.truncated, err = prom.Register(reg, m.truncated)
	}
	if err == nil {
		m.lag, err = prom.Register(reg, m.lag)
	}
	if err == nil {
		m.age, err = prom.Register(reg, m.age)
	}
	if err == nil {
		m.latency, err = prom.Register(reg, m.latency)
	}
	if err == nil {
		m.batchSizes, err = prom.Register(reg, m.batchSizes)
	}
	return m, err
}

// partitionMetrics are the collectors of one projection and partition,
// resolved once.
type partitionMetrics struct {
	applied, errors, resets prometheus.Counter
	// parked counts refused records by reason (a bounded set:
	// kafka.ReasonOf).
	parked         func(reason schemas.Reason) prometheus.Counter
	age            prometheus.Gauge
	latency, batch prometheus.Observer
}

func (m *metrics) forPartition(name string, p int32) partitionMetrics {
	ps := strconv.Itoa(int(p))
	return partitionMetrics{
		applied: m.applied.WithLabelValues(name),
		parked: func(reason schemas.Reason) prometheus.Counter {
			return m.parked.WithLabelValues(name, string(reason))
		},
		errors:  m.errors.WithLabelValues(name),
		resets:  m.resets.WithLabelValues(name),
		age:     m.age.WithLabelValues(name, ps),
		latency: m.latency.WithLabelValues(name),
		batch:   m.batchSizes.WithLabelValues(name),
	}
}

// setLag sets a partition's lag; the gauge appears only once measured.
func (m *metrics) setLag(name string, p int32, records int64) {
	m.lag.WithLabelValues(name, strconv.Itoa(int(p))).Set(float64(records))
}

// forget removes a partition's gauges when this instance no longer owns it.
func (m *metrics) forget(name string, p int32) {
	ps := strconv.Itoa(int(p))
	m.lag.DeleteLabelValues(name, ps)
	m.age.DeleteLabelValues(name, ps)
}

func ageSeconds(eventMillis int64, now time.Time) float64 {
	return now.Sub(time.UnixMilli(eventMillis)).Seconds()
}

// rebuildMetrics show a running rebuild's progress to an operator, by
// projection name.
type rebuildMetrics struct {
	running  *prometheus.GaugeVec
	replayed *prometheus.GaugeVec
	target   *prometheus.GaugeVec
}

func newRebuildMetrics(reg prometheus.Registerer) (*rebuildMetrics, error) {
	m := &rebuildMetrics{
		running: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "rtstack_rebuild_running",
			Help: "1 while a rebuild of the projection runs in this process, else 0.",
		}, []string{"projection"}),
		replayed: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "rtstack_rebuild_replayed_records",
			Help: "Records the running (or last) rebuild has replayed.",
		}, []string{"projection"}),
		target: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "rtstack_rebuild_target_records",
			Help: "Records the rebuild must replay to catch up (grows while the live tail moves).",
		}, []string{"projection"}),
	}
	if reg == nil {
		return m, nil
	}
	var err error
	// A process rebuilds again and again (the admin API): reuse the gauges.
	m.running, err = prom.Register(reg, m.running)
	if err == nil {
		m.replayed, err = prom.Register(reg, m.replayed)
	}
	if err == nil {
		m.target, err = prom.Register(reg, m.target)
	}
	return m, err
}
