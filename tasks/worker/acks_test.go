package worker_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/rtstack/rtstack/internal/testsvc"
	"github.com/rtstack/rtstack/tasks"
	"github.com/rtstack/rtstack/tasks/internal/taskstest"
	"github.com/rtstack/rtstack/tasks/rabbit"
	"github.com/rtstack/rtstack/tasks/worker"
)

// TestCutBeforeAckPostsOnce: tasks recorded done whose acks are still held
// (behind a first task in its POST) when the connection is cut are
// redelivered and skipped: none lost, none posted twice.
func TestCutBeforeAckPostsOnce(t *testing.T) {
	worker.HoldAcks(t, time.Hour) // every ack waits for the first task
	rc := taskstest.Rabbit(t, fast...)
	db := pool(t, testsvc.Postgres(t))
	firstID := webhookTask("cut-first", "").ID
	release := make(chan struct{})
	var releaseOnce sync.Once
	unblock := func() { releaseOnce.Do(func() { close(release) }) }
	defer unblock()
	target := taskstest.NewTarget(t, func(r *http.Request, attempt int) int {
		if r.Header.Get(tasks.HeaderDelivery) == firstID && attempt == 1 {
			<-release
		}
		return http.StatusOK
	})
	proxy := testsvc.Proxy(t, "127.0.0.1:5672")
	reg := prometheus.NewRegistry()
	start(t, worker.Config{
		RabbitURL: strings.Replace(rc.URL, "127.0.0.1:5672", proxy.Addr(), 1),
		Prefix:    rc.Prefix, RetryDelays: rc.RetryDelays, Pool: db, AllowPrivate: true, Registerer: reg,
	})
	const n = 20
	ts := []tasks.Task{webhookTask("cut-first", target.URL)}
	for i := range n {
		ts = append(ts, webhookTask(fmt.Sprint("cut-", i), target.URL))
	}
	publish(t, rc, ts...)
	testsvc.Eventually(t, 20*time.Second, "the tasks after the first recorded done", func() bool {
		for _, task := range ts[1:] {
			if doneRecord(t, db, task.ID).n != 1 {
				return false
			}
		}
		return true
	})
	proxy.Cut() // their acks wait behind the first, still in its POST
	unblock()
	testsvc.Eventually(t, 20*time.Second, "the first recorded done", func() bool { return doneRecord(t, db, firstID).n == 1 })
	proxy.Restore()
	testsvc.Eventually(t, 30*time.Second, "every task redelivered and skipped", func() bool {
		return counter(t, reg, "skipped") == n+1
	})
	if got := counter(t, reg, "done"); got != n+1 {
		t.Errorf("%v tasks done, want %d", got, n+1)
	}
	per := map[string]int{}
	for _, r := range target.Requests() {
		per[r.Delivery]++
	}
	for _, task := range ts {
		if per[task.ID] != 1 {
			t.Errorf("task %s posted %d times, want once", task.ID, per[task.ID])
		}
	}
	if ds := dead(t, rc); len(ds) != 0 {
		t.Errorf("DLQ holds %v", ds)
	}
}

// TestFailuresAmidSuccesses: a task that fails (retried, then dead), one
// refused (dead at once) and an undecodable delivery (rejected) in a run
// of successful tasks each reach the DLQ as they should while the acks of
// the others go out together.
func TestFailuresAmidSuccesses(t *testing.T) {
	worker.HoldAcks(t, time.Hour) // every ack is part of a multiple ack
	rc := taskstest.Rabbit(t, fast...)
	db := pool(t, testsvc.Postgres(t))
	failing, refused := webhookTask("mid-10", "").ID, webhookTask("mid-20", "").ID
	target := taskstest.NewTarget(t, func(r *http.Request, _ int) int {
		switch r.Header.Get(tasks.HeaderDelivery) {
		case failing:
			return http.StatusInternalServerError
		case refused:
			return http.StatusNotFound
		}
		return http.StatusOK
	})
	start(t, worker.Config{RabbitURL: rc.URL, Prefix: rc.Prefix, RetryDelays: rc.RetryDelays, Pool: db, AllowPrivate: true})
	var ts []tasks.Task
	for i := range 30 {
		ts = append(ts, webhookTask(fmt.Sprint("mid-", i), target.URL))
	}
	publish(t, rc, ts[:15]...)
	publishJunk(t, rc)
	publish(t, rc, ts[15:]...)

	var ds []rabbit.DeadTask
	testsvc.Eventually(t, 20*time.Second, "three tasks in the DLQ", func() bool { ds = dead(t, rc); return len(ds) >= 3 })
	got := map[string]rabbit.DeadTask{}
	for _, d := range ds {
		got[d.ID] = d
	}
	if d := got[failing]; len(ds) != 3 || d.Attempts != 3 || !strings.Contains(d.LastError, "500") {
		t.Errorf("DLQ %+v: want the failing task after 3 attempts", ds)
	}
	if d := got[refused]; d.Attempts != 1 || !strings.Contains(d.LastError, "404") {
		t.Errorf("DLQ %+v: want the refused task after 1 attempt", ds)
	}
	if d := got["junk"]; d.Summary != "undecodable task" {
		t.Errorf("DLQ %+v: want the undecodable delivery", ds)
	}
	testsvc.Eventually(t, 10*time.Second, "the others recorded done", func() bool {
		var n int
		err := db.QueryRow(context.Background(), `SELECT count(*) FROM rtstack_tasks.done`).Scan(&n)
		return err == nil && n == 28
	})
	for _, task := range ts {
		want := 1
		switch task.ID {
		case failing:
			want = 0
		case refused:
			continue
		}
		if r := doneRecord(t, db, task.ID); r.n != want {
			t.Errorf("task %s: %d completion records, want %d", task.ID, r.n, want)
		}
	}
	if n := target.Count(); n != 28+3+1 {
		t.Errorf("target saw %d requests, want 28 successes, 3 attempts of the failing task and 1 of the refused one", n)
	}
}

func publishJunk(t *testing.T, rc rabbit.Config) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	p, err := rabbit.NewPublisher(ctx, rc)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	junk := amqp.Publishing{MessageId: "junk", Body: []byte("not json"), DeliveryMode: amqp.Persistent}
	if err := p.PublishRaw(ctx, rc.Topology().Main(), junk); err != nil {
		t.Fatal(err)
	}
}
