package rabbit_test

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/rtstack/rtstack/internal/testsvc"
	"github.com/rtstack/rtstack/tasks"
	"github.com/rtstack/rtstack/tasks/internal/taskstest"
	"github.com/rtstack/rtstack/tasks/rabbit"
)

// The depth gauges follow what is in each queue, the DLQ included.
func TestQueueStatsFollowTheQueues(t *testing.T) {
	rc := taskstest.Rabbit(t, time.Minute)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	stats := rabbit.NewQueueStats(rc)
	defer stats.Close()
	reg := prometheus.NewRegistry()
	reg.MustRegister(stats)
	// value is the sample of name (for queue, if given), or -1 if absent.
	value := func(name, queue string) float64 {
		t.Helper()
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			if mf.GetName() != name {
				continue
			}
			for _, m := range mf.GetMetric() {
				if queue == "" || m.GetLabel()[0].GetValue() == queue {
					return m.GetGauge().GetValue() + m.GetCounter().GetValue() // one of them is set
				}
			}
		}
		return -1
	}
	depth := func(queue string) float64 { return value("rtstack_rabbit_queue_messages", queue) }
	if d := depth("tasks.dead"); d != 0 {
		t.Fatalf("empty DLQ has depth %v", d)
	}
	p, err := rabbit.NewPublisher(ctx, rc)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	topo := rc.Topology()
	for _, id := range []string{"t1", "t2", "t3"} {
		if err := p.PublishTasks(ctx, tasks.Task{ID: id, Kind: tasks.KindNotify, Room: "r", User: "bob"}); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.Publish(ctx, topo.Dead(), rabbit.Envelope{Task: tasks.Task{ID: "t-dead", Kind: tasks.KindNotify, Room: "r", User: "bob"}, Attempt: 2}); err != nil {
		t.Fatal(err)
	}
	// Publishes are confirmed; the queue counts follow at once or shortly.
	testsvc.Eventually(t, 10*time.Second, "3 in the main queue, 1 in the DLQ", func() bool {
		return depth("tasks") == 3 && depth("tasks.dead") == 1 && depth("tasks.delay.60000ms") == 0
	})
	if depth("tasks") != 3 || value("rtstack_rabbit_queue_consumers", "tasks") != 0 {
		t.Errorf("main queue: %v messages, %v consumers; want 3 and none", depth("tasks"), value("rtstack_rabbit_queue_consumers", "tasks"))
	}
	if n := value("rtstack_rabbit_queue_stats_errors_total", ""); n != 0 {
		t.Errorf("%v scrape failures against a running RabbitMQ", n)
	}
}

// A scrape without RabbitMQ reports no depths and counts the failure.
func TestQueueStatsWithoutRabbit(t *testing.T) {
	stats := rabbit.NewQueueStats(rabbit.Config{URL: "amqp://guest:guest@127.0.0.1:1/"})
	defer stats.Close()
	if n := testutil.CollectAndCount(stats, "rtstack_rabbit_queue_messages"); n != 0 {
		t.Errorf("%d depth series without RabbitMQ", n)
	}
	// That scrape failed, and so does this one: two failures counted.
	if n := testutil.ToFloat64(stats); n != 2 {
		t.Errorf("error counter %v after two failed scrapes, want 2", n)
	}
}
