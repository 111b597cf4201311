package rabbit_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

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
	want := func(main, dead int) string {
		return fmt.Sprintf(`# HELP rtstack_rabbit_queue_messages Messages ready in the queue (tasks.dead is the DLQ), read from RabbitMQ at scrape time.
# TYPE rtstack_rabbit_queue_messages gauge
rtstack_rabbit_queue_messages{queue="tasks"} %d
rtstack_rabbit_queue_messages{queue="tasks.dead"} %d
rtstack_rabbit_queue_messages{queue="tasks.delay.60000ms"} 0
# HELP rtstack_rabbit_queue_consumers Consumers of the queue (workers on tasks), read from RabbitMQ at scrape time.
# TYPE rtstack_rabbit_queue_consumers gauge
rtstack_rabbit_queue_consumers{queue="tasks"} 0
rtstack_rabbit_queue_consumers{queue="tasks.dead"} 0
rtstack_rabbit_queue_consumers{queue="tasks.delay.60000ms"} 0
# HELP rtstack_rabbit_queue_stats_errors_total Scrapes that could not read the queue depths from RabbitMQ.
# TYPE rtstack_rabbit_queue_stats_errors_total counter
rtstack_rabbit_queue_stats_errors_total 0
`, main, dead)
	}
	if err := testutil.CollectAndCompare(stats, strings.NewReader(want(0, 0))); err != nil {
		t.Fatalf("empty queues: %v", err)
	}
	p, err := rabbit.NewPublisher(ctx, rc)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	for _, id := range []string{"t1", "t2", "t3"} {
		if err := p.PublishTasks(ctx, tasks.Task{ID: id, Kind: tasks.KindNotify, Room: "r", User: "bob"}); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.Publish(ctx, rc.Topology().Dead(), rabbit.Envelope{Task: tasks.Task{ID: "t-dead", Kind: tasks.KindNotify, Room: "r", User: "bob"}, Attempt: 2}); err != nil {
		t.Fatal(err)
	}
	// Confirmed publishes show in the queue counts at once or shortly.
	testsvc.Eventually(t, 10*time.Second, "3 in the main queue, 1 in the DLQ", func() bool {
		return testutil.CollectAndCompare(stats, strings.NewReader(want(3, 1))) == nil
	})
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
