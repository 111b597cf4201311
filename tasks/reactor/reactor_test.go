package reactor_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/rtstack/rtstack/events"
	"github.com/rtstack/rtstack/infra/kafka"
	"github.com/rtstack/rtstack/infra/kafka/kafkatest"
	"github.com/rtstack/rtstack/internal/testsvc"
	"github.com/rtstack/rtstack/schemas"
	"github.com/rtstack/rtstack/tasks"
	"github.com/rtstack/rtstack/tasks/internal/taskstest"
	"github.com/rtstack/rtstack/tasks/rabbit"
	"github.com/rtstack/rtstack/tasks/reactor"
	"github.com/rtstack/rtstack/tasks/worker"
)

var fast = []time.Duration{100 * time.Millisecond, 200 * time.Millisecond}

type env struct {
	t      *testing.T
	dir    string // the broker's DATA_DIR
	broker *kafka.Broker
	addr   string
	codec  *schemas.Codec
	log    *kafka.Log
	rc     rabbit.Config
	db     *pgxpool.Pool
	target *taskstest.Target
	n      int // events appended
}

func setup(t *testing.T) *env {
	testsvc.Integration(t)
	dir := t.TempDir()
	b := kafkatest.Broker(t, dir)
	kafkatest.Topic(t, b.Addr(), kafka.DefaultTopic, 3)
	codec := kafkatest.Codec(t)
	db, err := pgxpool.New(context.Background(), testsvc.Postgres(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	return &env{
		t: t, dir: dir, broker: b, addr: b.Addr(), codec: codec,
		log:    kafka.NewLog(kafkatest.Client(t, b.Addr()), codec, kafka.DefaultTopic),
		rc:     taskstest.Rabbit(t, fast...),
		db:     db,
		target: taskstest.NewTarget(t, nil),
	}
}

func (e *env) append(ev events.Event) events.Position {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	pos, err := e.log.Append(ctx, ev)
	if err != nil {
		e.t.Fatal(err)
	}
	e.n++
	return pos
}

func (e *env) register(room, id string) events.Position {
	return e.append(&events.WebhookRegistered{
		Envelope:  events.Envelope{ID: "reg-" + id, Room: room, User: "admin", Time: 1},
		WebhookID: id, URL: e.target.URL + "/" + id, Secret: "secret-" + id,
	})
}

func (e *env) send(room, id string, mentions ...string) {
	e.append(&events.MessageSent{
		Envelope:  events.Envelope{ID: id, Room: room, User: "alice", Time: 1000},
		MessageID: "m-" + id, Text: "hello " + id, Mentions: mentions,
	})
}

// caughtUp waits until group has committed the end of every partition.
func (e *env) caughtUp(group string) {
	e.t.Helper()
	adm := kadm.NewClient(kafkatest.Client(e.t, e.addr))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	testsvc.Eventually(e.t, 30*time.Second, group+" committed the end of the log", func() bool {
		ends, err := adm.ListEndOffsets(ctx, kafka.DefaultTopic)
		if err != nil {
			return false
		}
		committed, err := adm.FetchOffsets(ctx, group)
		if err != nil {
			return false
		}
		ok := true
		ends.Each(func(o kadm.ListedOffset) {
			c, found := committed.Lookup(kafka.DefaultTopic, o.Partition)
			if o.Offset > 0 && (!found || c.At != o.Offset) {
				ok = false
			}
		})
		return ok
	})
}

// run starts a component until stop is called or the test ends.
func run(t *testing.T, r interface{ Run(context.Context) error }) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("run: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

func (e *env) reactor(group, rabbitURL string, reg prometheus.Registerer) (stop func()) {
	r, err := reactor.New(reactor.Config{
		Kafka: kafka.ClientConfig{Brokers: []string{e.addr}}, Group: group, Codec: e.codec,
		RabbitURL: rabbitURL, Prefix: e.rc.Prefix, RetryDelays: e.rc.RetryDelays, Registerer: reg,
		Keyring: taskstest.Keyring,
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return run(e.t, r)
}

func (e *env) worker(reg prometheus.Registerer) (stop func()) {
	w, err := worker.New(worker.Config{
		RabbitURL: e.rc.URL, Prefix: e.rc.Prefix, RetryDelays: e.rc.RetryDelays,
		Pool: e.db, AllowPrivate: true, Registerer: reg, Keyring: taskstest.Keyring,
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return run(e.t, w)
}

// delivered returns how many requests each message id received.
func delivered(t *testing.T, tg *taskstest.Target) map[string]int {
	out := map[string]int{}
	for _, r := range tg.Requests() {
		var m tasks.Message
		if err := json.Unmarshal(r.Body, &m); err != nil {
			t.Fatalf("payload %s: %v", r.Body, err)
		}
		out[m.MessageID]++
	}
	return out
}

func TestReactorDeliversOnceAndNeverRefires(t *testing.T) {
	e := setup(t)
	wreg := prometheus.NewRegistry()
	e.worker(wreg)

	// A message before the room had a webhook gets none; those after do.
	e.send("r1", "before")
	e.register("r1", "w1")
	for i := range 5 {
		e.send("r1", fmt.Sprint("a", i))
		e.send("r2", fmt.Sprint("b", i)) // r2 has no webhook
	}
	reg1 := prometheus.NewRegistry()
	stop := e.reactor("grp", e.rc.URL, reg1)
	testsvc.Eventually(t, 30*time.Second, "5 webhook deliveries", func() bool { return e.target.Distinct() == 5 })
	stop()
	got := delivered(t, e.target)
	if got["m-before"] != 0 || len(got) != 5 {
		t.Fatalf("deliveries %v, want a0..a4 only", got)
	}
	for _, r := range e.target.Requests() {
		if !tasks.VerifySignature("secret-w1", r.Body, r.Signature) {
			t.Errorf("bad signature on %s", r.Body)
		}
	}

	// A fresh reactor in the same group re-folds the log and emits only
	// past the commit: the one new message, to the webhook it folded from
	// below the commit.
	reg2 := prometheus.NewRegistry()
	e.reactor("grp", e.rc.URL, reg2)
	e.send("r1", "after-restart")
	testsvc.Eventually(t, 30*time.Second, "the new message delivered", func() bool { return e.target.Distinct() == 6 })
	testsvc.Eventually(t, 10*time.Second, "second reactor read the whole log", func() bool {
		return testsvc.Sum(t, reg2, "rtstack_reactor_records_total") == float64(e.n)
	})
	e.caughtUp("grp") // its tasks are confirmed and counted before it commits
	if n := testsvc.Sum(t, reg2, "rtstack_reactor_tasks_published_total"); n != 1 {
		t.Errorf("restarted reactor published %v tasks, want 1 (the new message)", n)
	}

	// A projection rebuild reads the log from zero in a group of its own:
	// the reactor's group is untouched.
	rebuild := kafkatest.Client(t, e.addr, kgo.ConsumerGroup("projection-rebuild-v2"), kgo.ConsumeTopics(kafka.DefaultTopic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	read := 0
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for read < e.n {
		fs := rebuild.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("rebuild read %d of %d: %v", read, e.n, err)
		}
		read += len(fs.Records())
	}
	if err := rebuild.CommitUncommittedOffsets(ctx); err != nil {
		t.Fatal(err)
	}
	e.send("r1", "after-rebuild")
	testsvc.Eventually(t, 30*time.Second, "the message after the rebuild delivered", func() bool { return e.target.Distinct() == 7 })
	e.caughtUp("grp")
	if n := testsvc.Sum(t, reg2, "rtstack_reactor_tasks_published_total"); n != 2 {
		t.Errorf("reactor published %v tasks after the rebuild, want 2 in all", n)
	}
	for id, n := range delivered(t, e.target) {
		if n != 1 {
			t.Errorf("%s delivered %d times", id, n)
		}
	}

	// A reactor of another group re-publishes every task with the same
	// ids: the workers find them recorded done and skip them.
	reg3 := prometheus.NewRegistry()
	e.reactor("grp-other", e.rc.URL, reg3)
	testsvc.Eventually(t, 30*time.Second, "second group's tasks published", func() bool {
		return testsvc.Sum(t, reg3, "rtstack_reactor_tasks_published_total") == 7
	})
	testsvc.Eventually(t, 30*time.Second, "workers skipped them", func() bool {
		return testsvc.Sum(t, wreg, "rtstack_worker_tasks_total", "outcome", "skipped") == 7
	})
	if n := e.target.Count(); n != 7 {
		t.Errorf("target saw %d requests, want 7: replayed tasks were delivered again", n)
	}
}

// TestReactorMentions: a mention notifies the mentioned user only if they
// are a member of the room at that point of the log. The author, a user
// who left, a member of another room and a user who joins only after the
// message notify nobody, and each skipped mention is counted.
func TestReactorMentions(t *testing.T) {
	e := setup(t)
	e.worker(nil)
	e.member("r1", "alice", true)
	e.member("r1", "bob", true)
	e.member("r1", "carol", true)
	e.member("r1", "carol", false)
	e.member("r2", "dave", true)
	e.send("r1", "m1", "bob", "alice", "carol", "dave", "erin")
	e.member("r1", "erin", true)
	reg := prometheus.NewRegistry()
	e.reactor("grp", e.rc.URL, reg)
	testsvc.Eventually(t, 30*time.Second, "mention task published", func() bool {
		return testsvc.Sum(t, reg, "rtstack_reactor_tasks_published_total", "kind", "notify") == 1
	})
	id := tasks.ID("m-m1", tasks.KindNotify, "bob") // keyed by the message id
	testsvc.Eventually(t, 10*time.Second, "mention done", func() bool {
		var n int
		_ = e.db.QueryRow(context.Background(), `SELECT count(*) FROM rtstack_tasks.done WHERE task_id = $1`, id).Scan(&n)
		return n == 1
	})
	e.caughtUp("grp")
	if n := testsvc.Sum(t, reg, "rtstack_reactor_tasks_published_total"); n != 1 {
		t.Errorf("published %v tasks, want only bob's notification", n)
	}
	if n := testsvc.Sum(t, reg, "rtstack_reactor_mentions_skipped_total"); n != 3 {
		t.Errorf("%v mentions skipped, want 3 (carol left, dave is in r2, erin joined later)", n)
	}
}

// member appends user's MemberJoined (in) or MemberLeft of room.
func (e *env) member(room, user string, in bool) {
	env := events.Envelope{ID: fmt.Sprintf("mem-%s-%s-%d", room, user, e.n), Room: room, User: user, Time: 500}
	if in {
		e.append(&events.MemberJoined{Envelope: env})
	} else {
		e.append(&events.MemberLeft{Envelope: env})
	}
}

func TestReactorSurvivesRabbitOutage(t *testing.T) {
	e := setup(t)
	e.worker(nil)
	proxy := testsvc.Proxy(t, "127.0.0.1:5672")
	viaProxy := strings.Replace(e.rc.URL, "127.0.0.1:5672", proxy.Addr(), 1)
	reg := prometheus.NewRegistry()
	e.register("r1", "w1")
	e.register("r2", "w2")
	e.reactor("grp", viaProxy, reg)

	const total = 60
	for i := range total {
		switch i {
		case 20:
			testsvc.Eventually(t, 30*time.Second, "first deliveries", func() bool { return e.target.Distinct() >= 1 })
			proxy.Cut()
		case 40:
			testsvc.Eventually(t, 30*time.Second, "reactor noticing the outage", func() bool {
				return testsvc.Sum(t, reg, "rtstack_reactor_publish_failures_total") >= 1
			})
			proxy.Restore()
		}
		e.send(fmt.Sprint("r", 1+i%2), fmt.Sprint("m", i))
	}
	testsvc.Eventually(t, 60*time.Second, "every task delivered", func() bool { return e.target.Distinct() == total })
	got := delivered(t, e.target)
	for i := range total {
		if got[fmt.Sprint("m-m", i)] == 0 {
			t.Errorf("m%d lost", i)
		}
	}
}

// TestReactorLag holds the reactor on a message RabbitMQ cannot take: its
// lag gauge shows the records behind it, then falls to zero once it can
// publish again.
func TestReactorLag(t *testing.T) {
	e := setup(t)
	e.worker(nil)
	proxy := testsvc.Proxy(t, "127.0.0.1:5672")
	proxy.Cut()
	e.register("r1", "w1")
	for i := range 4 {
		e.send("r1", fmt.Sprint("m", i)) // one room: one partition
	}
	reg := prometheus.NewRegistry()
	r, err := reactor.New(reactor.Config{
		Kafka: kafka.ClientConfig{Brokers: []string{e.addr}}, Group: "grp", Codec: e.codec, MaxBatch: 1, Registerer: reg,
		RabbitURL: strings.Replace(e.rc.URL, "127.0.0.1:5672", proxy.Addr(), 1), Prefix: e.rc.Prefix, RetryDelays: e.rc.RetryDelays,
		Keyring: taskstest.Keyring,
	})
	if err != nil {
		t.Fatal(err)
	}
	run(t, r)
	// The registration is handled and committed; the first message waits.
	testsvc.Eventually(t, 30*time.Second, "lag of the 4 held messages", func() bool {
		return testsvc.Sum(t, reg, "rtstack_reactor_lag_records") == 4
	})
	proxy.Restore()
	testsvc.Eventually(t, 60*time.Second, "every message delivered", func() bool { return e.target.Distinct() == 4 })
	testsvc.Eventually(t, 10*time.Second, "lag back to zero", func() bool {
		return testsvc.Sum(t, reg, "rtstack_reactor_lag_records") == 0
	})
}

// TestReactorsShareGroup runs two reactors in one group, stops one
// mid-stream, and checks every message reaches its webhook exactly once:
// partitions move between members without losing or re-delivering.
func TestReactorsShareGroup(t *testing.T) {
	e := setup(t)
	e.worker(nil)
	rooms := []string{"r1", "r2", "r3", "r4", "r5", "r6"}
	for _, r := range rooms {
		e.register(r, "w-"+r)
	}
	regA, regB := prometheus.NewRegistry(), prometheus.NewRegistry()
	stopA := e.reactor("grp", e.rc.URL, regA)
	e.reactor("grp", e.rc.URL, regB)
	const total = 60
	for i := range total {
		if i == total/2 {
			testsvc.Eventually(t, 30*time.Second, "first half delivered", func() bool { return e.target.Distinct() == total/2 })
			stopA()
		}
		e.send(rooms[i%len(rooms)], fmt.Sprint("s", i))
	}
	testsvc.Eventually(t, 60*time.Second, "every message delivered", func() bool { return e.target.Distinct() == total })
	if n := e.target.Count(); n != total {
		t.Errorf("target saw %d requests for %d messages", n, total)
	}
	e.caughtUp("grp")
	if a, b := testsvc.Sum(t, regA, "rtstack_reactor_tasks_published_total"), testsvc.Sum(t, regB, "rtstack_reactor_tasks_published_total"); a+b < total {
		t.Errorf("reactors published %v+%v tasks, want at least %d", a, b, total)
	}
}

// A record outside its room's partition is not part of the room's history:
// a message there fires no webhook and a registration there is not folded,
// each counted; the room's own records are handled as usual.
func TestReactorSkipsAndCountsMisplacedRecords(t *testing.T) {
	e := setup(t)
	e.worker(nil)
	e.register("r1", "w1")
	misplace := func(ev events.Event) {
		if p := kafkatest.ProduceMisplaced(t, e.addr, kafka.DefaultTopic, 3, e.codec, ev); p.Partition < 0 {
			t.Fatalf("produced at %v", p)
		}
	}
	misplace(&events.MessageSent{Envelope: events.Envelope{ID: "stray", Room: "r1", User: "alice", Time: 1000}, MessageID: "m-stray", Text: "stray"})
	e.send("r1", "good")
	misplace(&events.WebhookRegistered{Envelope: events.Envelope{ID: "reg-w2", Room: "r2", User: "admin", Time: 1},
		WebhookID: "w2", URL: e.target.URL + "/w2", Secret: "secret-w2"})
	e.send("r2", "unhooked")

	reg := prometheus.NewRegistry()
	e.reactor("grp", e.rc.URL, reg)
	testsvc.Eventually(t, 30*time.Second, "the misplaced records counted", func() bool {
		return testsvc.Sum(t, reg, "rtstack_reactor_misplaced_records_total") == 2
	})
	testsvc.Eventually(t, 30*time.Second, "the good message's webhook", func() bool { return delivered(t, e.target)["m-good"] == 1 })
	e.caughtUp("grp")
	if n := testsvc.Sum(t, reg, "rtstack_reactor_tasks_published_total"); n != 1 {
		t.Errorf("published %v tasks, want the good message's webhook only", n)
	}
	if got := delivered(t, e.target); len(got) != 1 {
		t.Errorf("webhooks delivered for %v, want m-good only", got)
	}
	if n := testsvc.Sum(t, reg, "rtstack_reactor_decode_errors_total"); n != 0 {
		t.Errorf("%v decode errors, want 0: misplaced is its own count", n)
	}
}
