package reactor_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/rtstack/rtstack/infra/kafka"
	"github.com/rtstack/rtstack/infra/kafka/kafkatest"
	"github.com/rtstack/rtstack/internal/testsvc"
	"github.com/rtstack/rtstack/tasks/internal/taskstest"
	"github.com/rtstack/rtstack/tasks/reactor"
)

// loseTail stops the broker, cuts partition part back to keep records and
// starts it again on the same address and data.
func (e *env) loseTail(part int32, keep int64) int64 {
	e.t.Helper()
	e.broker.Close()
	end := kafkatest.TruncatePartition(e.t, e.dir, kafka.DefaultTopic, part, keep)
	b, err := kafka.StartBroker(kafka.BrokerConfig{Addr: e.addr, DataDir: e.dir})
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(b.Close)
	e.broker = b
	e.log = kafka.NewLog(kafkatest.Client(e.t, e.addr), e.codec, kafka.DefaultTopic)
	return end
}

func (e *env) newReactor(group string, resume bool, reg prometheus.Registerer) *reactor.Reactor {
	r, err := reactor.New(reactor.Config{
		Kafka: kafka.ClientConfig{Brokers: []string{e.addr}}, Group: group, Codec: e.codec, RabbitURL: e.rc.URL, Prefix: e.rc.Prefix,
		RetryDelays: e.rc.RetryDelays, Registerer: reg, ResumeTruncated: resume, Keyring: taskstest.Keyring,
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return r
}

// The log loses its tail under the reactor's commit: without
// ResumeTruncated the reactor refuses to start, naming the partition, the
// offsets and the repair; with it, it resumes at the log's end: no old
// side effect fires again, the message appended next is delivered.
func TestReactorLogLostItsTail(t *testing.T) {
	e := setup(t)
	e.worker(nil)
	part := e.register("r1", "w1").Partition
	for i := range 5 {
		e.send("r1", fmt.Sprint("m", i))
	}
	stop := e.reactor("grp", e.rc.URL, nil)
	testsvc.Eventually(t, 30*time.Second, "5 webhook deliveries", func() bool { return e.target.Distinct() == 5 })
	e.caughtUp("grp")
	stop()

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if end := e.loseTail(part, 3); end != 3 {
		t.Fatalf("log ends at %d after the truncation, want 3", end)
	}

	reg := prometheus.NewRegistry()
	err := e.newReactor("grp", false, reg).Run(ctx)
	if !errors.Is(err, reactor.ErrLogTruncated) {
		t.Fatalf("reactor on a truncated log: %v, want ErrLogTruncated", err)
	}
	for _, want := range []string{fmt.Sprintf("partition %d: position 6, log end 3", part), "rtstack react --resume-truncated"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	if n := testsvc.Sum(t, reg, "rtstack_reactor_log_truncated_total"); n != 1 {
		t.Errorf("rtstack_reactor_log_truncated_total = %v, want 1", n)
	}

	reg = prometheus.NewRegistry()
	resumed := e.newReactor("grp", true, reg)
	if err := resumed.CheckTruncated(ctx); err != nil { // as rtstack dev does before its gateway serves
		t.Fatal(err)
	}
	stop = run(t, resumed)
	defer stop()
	e.send("r1", "after") // offset 3: below the old commit
	testsvc.Eventually(t, 30*time.Second, "the message after the truncation delivered", func() bool { return e.target.Distinct() == 6 })
	e.caughtUp("grp")
	if n := testsvc.Sum(t, reg, "rtstack_reactor_tasks_published_total"); n != 1 {
		t.Errorf("resumed reactor published %v tasks, want 1 (the new message; the old ones fired already)", n)
	}
	if n := testsvc.Sum(t, reg, "rtstack_reactor_log_truncated_total"); n != 1 {
		t.Errorf("rtstack_reactor_log_truncated_total = %v, want 1", n)
	}
	if got := delivered(t, e.target); got["m-after"] != 1 {
		t.Errorf("deliveries %v: m-after not delivered once", got)
	}
}
