package worker_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/rtstack/rtstack/internal/testsvc"
	"github.com/rtstack/rtstack/tasks"
	"github.com/rtstack/rtstack/tasks/internal/taskstest"
	"github.com/rtstack/rtstack/tasks/rabbit"
	"github.com/rtstack/rtstack/tasks/worker"
)

// BenchmarkTasks measures tasks/s through the whole path (publish with
// confirms → worker with manual ack and a completion record in Postgres →
// a local HTTP target) against raw amqp091-go publish-with-confirms and
// consume-with-ack of as many messages, in the same run.
func BenchmarkTasks(b *testing.B) {
	const n = 2000
	rc := taskstest.Rabbit(b, time.Second)
	db := pool(b, testsvc.Postgres(b))
	target := taskstest.NewTarget(b, nil)
	start(b, worker.Config{RabbitURL: rc.URL, Prefix: rc.Prefix, RetryDelays: rc.RetryDelays, Pool: db, AllowPrivate: true})
	ctx := context.Background()
	pub, err := rabbit.NewPublisher(ctx, rc)
	if err != nil {
		b.Fatal(err)
	}
	defer pub.Close()

	var full, raw, fullCPU, rawCPU time.Duration
	b.ResetTimer()
	for i := range b.N {
		batch := make([]tasks.Task, n)
		for j := range batch {
			batch[j] = webhookTask(fmt.Sprintf("b%d-%d", i, j), target.URL)
		}
		before := target.Count()
		c0 := testsvc.ProcessCPU(b)
		t0 := time.Now()
		if err := pub.PublishTasks(ctx, batch...); err != nil {
			b.Fatal(err)
		}
		var done int
		testsvc.Eventually(b, 2*time.Minute, "tasks done", func() bool {
			if target.Count()-before < n {
				return false
			}
			_ = db.QueryRow(ctx, `SELECT count(*) FROM rtstack_tasks.done`).Scan(&done)
			return done >= (i+1)*n
		})
		full += time.Since(t0)
		c1 := testsvc.ProcessCPU(b)
		raw += rawRoundTrip(b, rc.URL, rc.Prefix+"raw", n)
		fullCPU, rawCPU = fullCPU+c1-c0, rawCPU+testsvc.ProcessCPU(b)-c1
	}
	b.StopTimer()
	fullRate := float64(b.N*n) / full.Seconds()
	rawRate := float64(b.N*n) / raw.Seconds()
	b.ReportMetric(fullRate, "tasks/s")
	b.ReportMetric(rawRate, "raw_msgs/s")
	b.ReportMetric(fullRate/rawRate, "ratio_vs_raw")
	// The benchmark process's CPU (worker, HTTP target and publisher; raw
	// publisher and consumer) per 10,000: less moved by other load than
	// the rates.
	per10k := func(d time.Duration) float64 { return float64(d.Milliseconds()) * 10000 / float64(b.N*n) }
	b.ReportMetric(per10k(fullCPU), "cpu_ms/10k")
	b.ReportMetric(per10k(rawCPU), "raw_cpu_ms/10k")
}

// rawRoundTrip publishes n messages with confirms and consumes them with
// manual acks (prefetch as the worker's default), returning the time from
// the first publish to the last ack.
func rawRoundTrip(b *testing.B, url, queue string, n int) time.Duration {
	b.Helper()
	ctx := context.Background()
	conn, err := rabbit.Dial(ctx, url)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		b.Fatal(err)
	}
	if _, err := ch.QueueDeclare(queue, true, false, false, false, nil); err != nil {
		b.Fatal(err)
	}
	defer ch.QueueDelete(queue, false, false, false)
	if err := ch.Confirm(false); err != nil {
		b.Fatal(err)
	}
	cch, err := conn.Channel()
	if err != nil {
		b.Fatal(err)
	}
	if err := cch.Qos(worker.DefaultPrefetch, 0, false); err != nil {
		b.Fatal(err)
	}
	ds, err := cch.Consume(queue, "", false, false, false, false, nil)
	if err != nil {
		b.Fatal(err)
	}
	consumed := make(chan struct{})
	go func() {
		defer close(consumed)
		for i := 0; i < n; i++ {
			d, ok := <-ds
			if !ok {
				return
			}
			_ = d.Ack(false)
		}
	}()
	body := []byte(`{"id":"x","kind":"webhook","room":"r1","url":"http://127.0.0.1/","body":{"text":"hello"}}`)
	t0 := time.Now()
	dcs := make([]*amqp.DeferredConfirmation, 0, n)
	for range n {
		dc, err := ch.PublishWithDeferredConfirmWithContext(ctx, "", queue, false, false,
			amqp.Publishing{DeliveryMode: amqp.Persistent, ContentType: "application/json", Body: body})
		if err != nil {
			b.Fatal(err)
		}
		dcs = append(dcs, dc)
	}
	for _, dc := range dcs {
		if !dc.Wait() {
			b.Fatal("raw publish nacked")
		}
	}
	<-consumed
	return time.Since(t0)
}
