package worker_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/rtstack/rtstack/internal/egress"
	"github.com/rtstack/rtstack/internal/testsvc"
	"github.com/rtstack/rtstack/tasks"
	"github.com/rtstack/rtstack/tasks/internal/taskstest"
	"github.com/rtstack/rtstack/tasks/rabbit"
	"github.com/rtstack/rtstack/tasks/worker"
)

var fast = []time.Duration{100 * time.Millisecond, 200 * time.Millisecond}

func pool(t testing.TB, url string) *pgxpool.Pool {
	t.Helper()
	p, err := pgxpool.New(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}

// start runs a worker until the test ends.
func start(t testing.TB, cfg worker.Config) {
	t.Helper()
	if cfg.Keyring == nil {
		cfg.Keyring = taskstest.Keyring
	}
	w, err := worker.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("worker run: %v", err)
		}
	})
}

func publish(t testing.TB, rc rabbit.Config, ts ...tasks.Task) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	p, err := rabbit.NewPublisher(ctx, rc)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if err := p.PublishTasks(ctx, ts...); err != nil {
		t.Fatal(err)
	}
}

func webhookTask(id, url string) tasks.Task {
	body, _ := json.Marshal(tasks.Message{Room: "r1", MessageID: "m-" + id, User: "alice", Text: "hello", TS: 1})
	return tasks.Task{
		ID: tasks.ID("ev-"+id, tasks.KindWebhook, "w1"), Kind: tasks.KindWebhook, EventID: "ev-" + id, Room: "r1",
		WebhookID: "w1", URL: url, SealedSecret: taskstest.Keyring.Seal("s3cret", "w1"), Body: body,
	}
}

type doneRow struct {
	n, attempts int
}

func doneRecord(t testing.TB, p *pgxpool.Pool, id string) doneRow {
	t.Helper()
	var r doneRow
	err := p.QueryRow(context.Background(),
		`SELECT count(*), coalesce(max(attempts), 0) FROM rtstack_tasks.done WHERE task_id = $1`, id).Scan(&r.n, &r.attempts)
	if err != nil && !strings.Contains(err.Error(), "does not exist") {
		t.Fatal(err)
	}
	return r
}

func dead(t testing.TB, rc rabbit.Config) []rabbit.DeadTask {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ds, err := rabbit.ListDLQ(ctx, rc, 0)
	if err != nil {
		t.Fatal(err)
	}
	return ds
}

func counter(t testing.TB, g prometheus.Gatherer, outcome string) float64 {
	t.Helper()
	return testsvc.Sum(t, g, "rtstack_worker_tasks_total", "outcome", outcome)
}

func TestRetryThenSuccess(t *testing.T) {
	rc := taskstest.Rabbit(t, fast...)
	db := pool(t, testsvc.Postgres(t))
	target := taskstest.NewTarget(t, func(_ *http.Request, attempt int) int {
		if attempt <= 2 {
			return http.StatusServiceUnavailable
		}
		return http.StatusNoContent
	})
	start(t, worker.Config{RabbitURL: rc.URL, Prefix: rc.Prefix, RetryDelays: rc.RetryDelays, Pool: db, AllowPrivate: true})
	task := webhookTask("retry", target.URL+"/hook")
	publish(t, rc, task)

	testsvc.Eventually(t, 20*time.Second, "task recorded done", func() bool { return doneRecord(t, db, task.ID).n == 1 })
	if r := doneRecord(t, db, task.ID); r != (doneRow{n: 1, attempts: 3}) {
		t.Errorf("completion record %+v, want one row after 3 attempts", r)
	}
	reqs := target.Requests()
	if len(reqs) != 3 {
		t.Fatalf("target saw %d requests, want 3", len(reqs))
	}
	for i, r := range reqs {
		if r.Delivery != task.ID {
			t.Errorf("attempt %d: delivery id %q, want %q", i+1, r.Delivery, task.ID)
		}
		if !tasks.VerifySignature("s3cret", r.Body, r.Signature) {
			t.Errorf("attempt %d: bad signature %q", i+1, r.Signature)
		}
		if string(r.Body) != string(task.Body) {
			t.Errorf("attempt %d: body %s, want %s", i+1, r.Body, task.Body)
		}
	}
	if ds := dead(t, rc); len(ds) != 0 {
		t.Errorf("DLQ holds %v", ds)
	}
}

func TestDeadLetterThenReplay(t *testing.T) {
	rc := taskstest.Rabbit(t, fast...)
	db := pool(t, testsvc.Postgres(t))
	target := taskstest.NewTarget(t, func(*http.Request, int) int { return http.StatusInternalServerError })
	start(t, worker.Config{RabbitURL: rc.URL, Prefix: rc.Prefix, RetryDelays: rc.RetryDelays, Pool: db, AllowPrivate: true})
	task := webhookTask("dead", target.URL)
	publish(t, rc, task)

	var ds []rabbit.DeadTask
	testsvc.Eventually(t, 20*time.Second, "task in the DLQ", func() bool { ds = dead(t, rc); return len(ds) == 1 })
	d := ds[0]
	if d.ID != task.ID || d.Kind != tasks.KindWebhook || d.Attempts != 3 || !strings.Contains(d.LastError, "500") {
		t.Errorf("dead task %+v, want id %s, 3 attempts, a 500 error", d, task.ID)
	}
	if strings.Contains(d.Summary, "s3cret") {
		t.Errorf("summary leaks the secret: %s", d.Summary)
	}
	if ds := dead(t, rc); len(ds) != 1 {
		t.Fatalf("listing the DLQ lost tasks: %d left", len(ds))
	}
	if n := target.Count(); n != 3 {
		t.Errorf("target saw %d attempts, want 3", n)
	}
	if r := doneRecord(t, db, task.ID); r.n != 0 {
		t.Errorf("failed task recorded done")
	}

	target.SetRespond(func(*http.Request, int) int { return http.StatusOK })
	n, err := rabbit.ReplayDLQ(context.Background(), rc)
	if err != nil || n != 1 {
		t.Fatalf("replay: %d, %v", n, err)
	}
	testsvc.Eventually(t, 20*time.Second, "replayed task done", func() bool { return doneRecord(t, db, task.ID).n == 1 })
	if r := doneRecord(t, db, task.ID); r.attempts != 1 {
		t.Errorf("replayed task done on attempt %d, want 1 (count reset)", r.attempts)
	}
	if n := target.Count(); n != 4 {
		t.Errorf("target saw %d requests, want 4", n)
	}
	if ds := dead(t, rc); len(ds) != 0 {
		t.Errorf("DLQ not empty after replay: %v", ds)
	}
}

// TestRetryFollowsStatusClass: a target that refuses a delivery (a 4xx
// other than 408/429) will refuse it again, so the task goes to the DLQ
// after one attempt with the status in its last error; a target that asks
// to come back later (5xx, 408, 429) gets every attempt.
func TestRetryFollowsStatusClass(t *testing.T) {
	for _, tc := range []struct {
		status   int
		attempts int
	}{
		{http.StatusNotFound, 1},
		{http.StatusUnauthorized, 1},
		{http.StatusServiceUnavailable, 3},
		{http.StatusTooManyRequests, 3},
		{http.StatusRequestTimeout, 3},
	} {
		t.Run(fmt.Sprint(tc.status), func(t *testing.T) {
			rc := taskstest.Rabbit(t, fast...)
			db := pool(t, testsvc.Postgres(t))
			target := taskstest.NewTarget(t, func(*http.Request, int) int { return tc.status })
			reg := prometheus.NewRegistry()
			start(t, worker.Config{RabbitURL: rc.URL, Prefix: rc.Prefix, RetryDelays: rc.RetryDelays, Pool: db, AllowPrivate: true, Registerer: reg})
			task := webhookTask(fmt.Sprint("status-", tc.status), target.URL)
			publish(t, rc, task)

			var ds []rabbit.DeadTask
			testsvc.Eventually(t, 20*time.Second, "task in the DLQ", func() bool { ds = dead(t, rc); return len(ds) == 1 })
			d := ds[0]
			if d.ID != task.ID || d.Attempts != tc.attempts || !strings.Contains(d.LastError, fmt.Sprint(tc.status)) {
				t.Errorf("dead task %+v, want id %s after %d attempts with status %d in its error", d, task.ID, tc.attempts, tc.status)
			}
			if n := target.Count(); n != tc.attempts {
				t.Errorf("target saw %d requests, want %d", n, tc.attempts)
			}
			if got := counter(t, reg, "retry"); got != float64(tc.attempts-1) {
				t.Errorf("%v retries counted, want %d", got, tc.attempts-1)
			}
		})
	}
}

func TestPurgeDLQ(t *testing.T) {
	rc := taskstest.Rabbit(t, fast...)
	ctx := context.Background()
	p, err := rabbit.NewPublisher(ctx, rc)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	for i := range 3 {
		err := p.Publish(ctx, rc.Topology().Dead(), rabbit.Envelope{Task: webhookTask(fmt.Sprint(i), "http://example.com/"), Attempt: 3, LastError: "boom"})
		if err != nil {
			t.Fatal(err)
		}
	}
	ds := dead(t, rc)
	if len(ds) != 3 || ds[0].ID != webhookTask("0", "").ID || ds[2].ID != webhookTask("2", "").ID || ds[1].LastError != "boom" {
		t.Fatalf("list %+v: want the 3 tasks in order", ds)
	}
	if n, err := rabbit.PurgeDLQ(ctx, rc); err != nil || n != 3 {
		t.Fatalf("purge: %d, %v", n, err)
	}
	if ds := dead(t, rc); len(ds) != 0 {
		t.Fatalf("DLQ after purge: %v", ds)
	}
}

func TestSkipsTaskAlreadyDone(t *testing.T) {
	rc := taskstest.Rabbit(t, fast...)
	db := pool(t, testsvc.Postgres(t))
	target := taskstest.NewTarget(t, nil)
	reg := prometheus.NewRegistry()
	start(t, worker.Config{RabbitURL: rc.URL, Prefix: rc.Prefix, RetryDelays: rc.RetryDelays, Pool: db, AllowPrivate: true, Registerer: reg})
	task := webhookTask("once", target.URL)
	publish(t, rc, task)
	testsvc.Eventually(t, 10*time.Second, "task done", func() bool { return doneRecord(t, db, task.ID).n == 1 })
	publish(t, rc, task, task) // a second reactor publishing the same ids
	testsvc.Eventually(t, 10*time.Second, "duplicates skipped", func() bool { return counter(t, reg, "skipped") == 2 })
	if n := target.Count(); n != 1 {
		t.Errorf("target saw %d deliveries of one task, want 1", n)
	}
}

func TestPrivateTargetRefused(t *testing.T) {
	rc := taskstest.Rabbit(t, fast...)
	db := pool(t, testsvc.Postgres(t))
	target := taskstest.NewTarget(t, nil)
	start(t, worker.Config{RabbitURL: rc.URL, Prefix: rc.Prefix, RetryDelays: rc.RetryDelays, Pool: db})
	private := webhookTask("private", target.URL)
	scheme := webhookTask("scheme", "ftp://example.com/x")
	publish(t, rc, private, scheme)

	var ds []rabbit.DeadTask
	testsvc.Eventually(t, 10*time.Second, "both refused into the DLQ", func() bool { ds = dead(t, rc); return len(ds) == 2 })
	for _, d := range ds {
		if d.Attempts != 1 {
			t.Errorf("%s: %d attempts; a refused target is permanent", d.ID, d.Attempts)
		}
		switch d.ID {
		case private.ID:
			if !strings.Contains(d.LastError, "private") {
				t.Errorf("private target error %q", d.LastError)
			}
		case scheme.ID:
			if !strings.Contains(d.LastError, "scheme") {
				t.Errorf("ftp target error %q", d.LastError)
			}
		}
	}
	if n := target.Count(); n != 0 {
		t.Errorf("private target received %d requests", n)
	}
}

// TestDialGuard checks the guard on the resolved address: "localhost" is a
// name, refused only once it resolves to 127.0.0.1.
func TestDialGuard(t *testing.T) {
	testsvc.Integration(t)
	target := taskstest.NewTarget(t, nil)
	url := strings.Replace(target.URL, "127.0.0.1", "localhost", 1)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	post := func(c *http.Client) error {
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader("{}"))
		resp, err := c.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		return err
	}
	if err := post(worker.NewHTTPClient(false)); !errors.Is(err, egress.ErrPrivateTarget) {
		t.Errorf("guarded client reached %s: %v", url, err)
	}
	if n := target.Count(); n != 0 {
		t.Errorf("target received %d requests through the guard", n)
	}
	if err := post(worker.NewHTTPClient(true)); err != nil {
		t.Errorf("allowed client: %v", err)
	}
	if n := target.Count(); n != 1 {
		t.Errorf("target received %d requests with private allowed, want 1", n)
	}
}

type fakeNotifier struct {
	mu     sync.Mutex
	online map[string]bool
	frames map[string][]string
}

func (f *fakeNotifier) UserOnline(_ context.Context, user string) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.online[user], nil
}

func (f *fakeNotifier) Notify(_ context.Context, user string, frame []byte) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.frames[user] = append(f.frames[user], string(frame))
	return nil
}

func (f *fakeNotifier) got(user string) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.frames[user]...)
}

func TestNotify(t *testing.T) {
	rc := taskstest.Rabbit(t, fast...)
	db := pool(t, testsvc.Postgres(t))
	push := taskstest.NewTarget(t, nil)
	n := &fakeNotifier{online: map[string]bool{"bob": true}, frames: map[string][]string{}}
	start(t, worker.Config{RabbitURL: rc.URL, Prefix: rc.Prefix, RetryDelays: rc.RetryDelays, Pool: db, Notifier: n, NotifyURL: push.URL, AllowPrivate: true})
	ev := sent("ev-n", "alice", "hi @bob @carol", "bob", "carol")
	ts, err := tasks.ForMessage(ev, ev0pos, nil)
	if err != nil || len(ts) != 2 {
		t.Fatalf("tasks %v %v", ts, err)
	}
	publish(t, rc, ts...)
	testsvc.Eventually(t, 10*time.Second, "both notified", func() bool {
		return doneRecord(t, db, ts[0].ID).n == 1 && doneRecord(t, db, ts[1].ID).n == 1
	})
	frames := n.got("bob")
	if len(frames) != 1 {
		t.Fatalf("online bob got %d frames", len(frames))
	}
	var f map[string]any
	if err := json.Unmarshal([]byte(frames[0]), &f); err != nil {
		t.Fatal(err)
	}
	if f["type"] != "notification" || f["kind"] != "mention" || f["from"] != "alice" || f["room"] != "r1" || f["message_id"] != "m-ev-n" {
		t.Errorf("frame %v", f)
	}
	if len(n.got("carol")) != 0 {
		t.Error("offline carol got a live frame")
	}
	reqs := push.Requests()
	if len(reqs) != 1 || reqs[0].Delivery != ts[1].ID {
		t.Fatalf("push endpoint got %+v, want carol's notification", reqs)
	}
	var body tasks.Notification
	if err := json.Unmarshal(reqs[0].Body, &body); err != nil || body.User != "carol" || body.From != "alice" {
		t.Errorf("push body %s (%v)", reqs[0].Body, err)
	}
}

func TestWorkerKilledMidDelivery(t *testing.T) {
	rc := taskstest.Rabbit(t, fast...)
	pgURL := testsvc.Postgres(t)
	db := pool(t, pgURL)
	arrived := make(chan struct{}, 4)
	release := make(chan struct{})
	target := taskstest.NewTarget(t, func(_ *http.Request, attempt int) int {
		arrived <- struct{}{}
		if attempt == 1 {
			<-release // blocks until the worker that sent it is dead
		}
		return http.StatusOK
	})
	defer close(release)
	task := webhookTask("kill", target.URL)
	publish(t, rc, task)

	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperWorker$")
	cmd.Env = append(os.Environ(), "RTSTACK_TASKS_HELPER=1",
		"HELPER_RABBIT="+rc.URL, "HELPER_PREFIX="+rc.Prefix, "HELPER_PG="+pgURL)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-arrived:
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatal("child worker never delivered")
	}
	if err := cmd.Process.Kill(); err != nil { // SIGKILL
		t.Fatal(err)
	}
	_ = cmd.Wait()
	if r := doneRecord(t, db, task.ID); r.n != 0 {
		t.Fatal("task recorded done by a worker killed before the answer")
	}

	start(t, worker.Config{RabbitURL: rc.URL, Prefix: rc.Prefix, RetryDelays: rc.RetryDelays, Pool: db, AllowPrivate: true})
	testsvc.Eventually(t, 20*time.Second, "redelivered task done", func() bool { return doneRecord(t, db, task.ID).n == 1 })
	reqs := target.Requests()
	if len(reqs) != 2 || reqs[0].Delivery != task.ID || reqs[1].Delivery != task.ID {
		t.Errorf("target saw %+v, want the same delivery id twice", reqs)
	}
}

// TestHelperWorker is the child process of TestWorkerKilledMidDelivery: a
// worker that runs until it is killed.
func TestHelperWorker(t *testing.T) {
	if os.Getenv("RTSTACK_TASKS_HELPER") != "1" {
		t.Skip("helper process")
	}
	db, err := pgxpool.New(context.Background(), os.Getenv("HELPER_PG"))
	if err != nil {
		t.Fatal(err)
	}
	w, err := worker.New(worker.Config{
		RabbitURL: os.Getenv("HELPER_RABBIT"), Prefix: os.Getenv("HELPER_PREFIX"),
		RetryDelays: fast, Pool: db, AllowPrivate: true, Keyring: taskstest.Keyring,
	})
	if err != nil {
		t.Fatal(err)
	}
	_ = w.Run(context.Background())
}

// TestWorkerSurvivesRabbitOutage cuts the worker's connection to RabbitMQ
// mid-stream: it reconnects and every task is done.
func TestWorkerSurvivesRabbitOutage(t *testing.T) {
	rc := taskstest.Rabbit(t, fast...)
	db := pool(t, testsvc.Postgres(t))
	target := taskstest.NewTarget(t, nil)
	proxy := testsvc.Proxy(t, "127.0.0.1:5672")
	start(t, worker.Config{
		RabbitURL: strings.Replace(rc.URL, "127.0.0.1:5672", proxy.Addr(), 1),
		Prefix:    rc.Prefix, RetryDelays: rc.RetryDelays, Pool: db, AllowPrivate: true,
	})
	const total = 40
	batch := func(from, to int) []tasks.Task {
		var ts []tasks.Task
		for i := from; i < to; i++ {
			ts = append(ts, webhookTask(fmt.Sprint("o", i), target.URL))
		}
		return ts
	}
	publish(t, rc, batch(0, 10)...)
	testsvc.Eventually(t, 20*time.Second, "first tasks delivered", func() bool { return target.Distinct() == 10 })
	proxy.Cut()
	publish(t, rc, batch(10, 30)...)
	proxy.Restore()
	publish(t, rc, batch(30, total)...)
	testsvc.Eventually(t, 30*time.Second, "every task delivered", func() bool { return target.Distinct() == total })
	// The record follows the POST: wait for it rather than race it.
	testsvc.Eventually(t, 10*time.Second, "every task recorded done", func() bool {
		var n int
		err := db.QueryRow(context.Background(), `SELECT count(*) FROM rtstack_tasks.done`).Scan(&n)
		return err == nil && n == total
	})
}

type panicky struct{}

func (panicky) UserOnline(context.Context, string) (bool, error) { panic("presence exploded") }
func (panicky) Notify(context.Context, string, []byte) error     { return nil }

// TestPanicIsDeadLettered: a task whose handling panics lands in the DLQ
// with the panic as its error, and the worker keeps going.
func TestPanicIsDeadLettered(t *testing.T) {
	rc := taskstest.Rabbit(t, fast...)
	db := pool(t, testsvc.Postgres(t))
	target := taskstest.NewTarget(t, nil)
	start(t, worker.Config{RabbitURL: rc.URL, Prefix: rc.Prefix, RetryDelays: rc.RetryDelays, Pool: db, Notifier: panicky{}, AllowPrivate: true})
	ts, err := tasks.ForMessage(sent("ev-p", "alice", "@bob", "bob"), ev0pos, nil)
	if err != nil {
		t.Fatal(err)
	}
	after := webhookTask("after-panic", target.URL)
	publish(t, rc, append(ts, after)...)
	var ds []rabbit.DeadTask
	testsvc.Eventually(t, 10*time.Second, "panicking task dead-lettered", func() bool { ds = dead(t, rc); return len(ds) == 1 })
	if ds[0].ID != ts[0].ID || !strings.Contains(ds[0].LastError, "presence exploded") {
		t.Errorf("dead task %+v", ds[0])
	}
	testsvc.Eventually(t, 10*time.Second, "next task still done", func() bool { return doneRecord(t, db, after.ID).n == 1 })
}
