package rabbit

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	amqp "github.com/rabbitmq/amqp091-go"
)

// QueueStats is a Prometheus collector of the depth and consumers of every
// queue of a topology (the main queue, each delay tier, the DLQ), read
// from RabbitMQ at each scrape, so an operator sees a backlog or a growing
// DLQ without the management plugin. The queue label is the name without
// the prefix: a fixed set. A scrape while RabbitMQ is unreachable reports
// no depths and counts the failure. Safe for concurrent use; Close it.
type QueueStats struct {
	cfg      Config
	topo     Topology
	messages *prometheus.Desc
	readers  *prometheus.Desc
	failures prometheus.Counter

	mu   sync.Mutex // guards conn and ch: one scrape at a time reads them
	conn *amqp.Connection
	ch   *amqp.Channel
}

var _ prometheus.Collector = (*QueueStats)(nil)

// NewQueueStats returns the collector of cfg's queues; it connects at the
// first scrape.
func NewQueueStats(cfg Config) *QueueStats {
	return &QueueStats{
		cfg:  cfg,
		topo: cfg.Topology(),
		messages: prometheus.NewDesc("rtstack_rabbit_queue_messages",
			"Messages ready in the queue (tasks.dead is the DLQ), read from RabbitMQ at scrape time.", []string{"queue"}, nil),
		readers: prometheus.NewDesc("rtstack_rabbit_queue_consumers",
			"Consumers of the queue (workers on tasks), read from RabbitMQ at scrape time.", []string{"queue"}, nil),
		failures: prometheus.NewCounter(prometheus.CounterOpts{Name: "rtstack_rabbit_queue_stats_errors_total",
			Help: "Scrapes that could not read the queue depths from RabbitMQ."}),
	}
}

// Describe implements prometheus.Collector.
func (s *QueueStats) Describe(ch chan<- *prometheus.Desc) {
	ch <- s.messages
	ch <- s.readers
	s.failures.Describe(ch)
}

// Collect implements prometheus.Collector.
func (s *QueueStats) Collect(ch chan<- prometheus.Metric) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.collectLocked(ch); err != nil {
		s.failures.Inc()
		s.closeLocked()
	}
	s.failures.Collect(ch)
}

func (s *QueueStats) collectLocked(ch chan<- prometheus.Metric) error {
	if s.ch == nil || s.ch.IsClosed() {
		s.closeLocked()
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		conn, err := Dial(ctx, s.cfg.url())
		if err != nil {
			return err
		}
		c, err := conn.Channel()
		if err != nil {
			_ = conn.Close()
			return fmt.Errorf("open channel: %w", err)
		}
		s.conn, s.ch = conn, c
	}
	// All queues or none: a scrape never shows half a topology.
	var out []prometheus.Metric
	for _, name := range s.topo.Queues() {
		q, err := s.ch.QueueDeclarePassive(name, true, false, false, false, nil)
		if err != nil {
			return fmt.Errorf("inspect %s: %w", name, err)
		}
		label := strings.TrimPrefix(name, s.topo.Prefix)
		out = append(out,
			prometheus.MustNewConstMetric(s.messages, prometheus.GaugeValue, float64(q.Messages), label),
			prometheus.MustNewConstMetric(s.readers, prometheus.GaugeValue, float64(q.Consumers), label))
	}
	for _, m := range out {
		ch <- m
	}
	return nil
}

// Close closes the connection of the collector, if any.
func (s *QueueStats) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closeLocked()
}

func (s *QueueStats) closeLocked() {
	if s.conn != nil {
		_ = s.conn.Close()
	}
	s.conn, s.ch = nil, nil
}
