package rabbit_test

import (
	"context"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/rtstack/rtstack/internal/testsvc"
	"github.com/rtstack/rtstack/tasks"
	"github.com/rtstack/rtstack/tasks/internal/taskstest"
	"github.com/rtstack/rtstack/tasks/rabbit"
)

func TestTopologyNames(t *testing.T) {
	topo := rabbit.Config{}.Topology()
	if topo.Main() != "rtstack.tasks" || topo.Dead() != "rtstack.tasks.dead" || topo.MaxAttempts() != 4 {
		t.Errorf("default topology %s %s %d", topo.Main(), topo.Dead(), topo.MaxAttempts())
	}
	if got := topo.Delay(2); got != "rtstack.tasks.delay.60000ms" {
		t.Errorf("third tier %s", got)
	}
	if err := (rabbit.Config{RetryDelays: []time.Duration{0}}).Validate(); err == nil {
		t.Error("a zero delay passed validation")
	}
}

func TestEnvelopeRoundTrip(t *testing.T) {
	in := rabbit.Envelope{Task: tasks.Task{ID: "t1", Kind: tasks.KindNotify, Room: "r", User: "bob", Body: []byte(`{"a":1}`)}, Attempt: 3, LastError: "boom"}
	p, err := in.Publishing()
	if err != nil {
		t.Fatal(err)
	}
	if p.DeliveryMode != amqp.Persistent || p.MessageId != "t1" {
		t.Errorf("publishing not persistent or without id: %+v", p)
	}
	out, err := rabbit.DecodeDelivery(amqp.Delivery{Headers: p.Headers, Body: p.Body, MessageId: p.MessageId})
	if err != nil {
		t.Fatal(err)
	}
	if out.Attempt != 3 || out.LastError != "boom" || out.Task.ID != "t1" || out.Task.User != "bob" || string(out.Task.Body) != `{"a":1}` {
		t.Errorf("round trip %+v", out)
	}
	first, err := rabbit.DecodeDelivery(amqp.Delivery{Body: p.Body})
	if err != nil || first.Attempt != 1 {
		t.Errorf("no attempt header: attempt %d, %v", first.Attempt, err)
	}
	if _, err := rabbit.DecodeDelivery(amqp.Delivery{Body: []byte("{")}); err == nil {
		t.Error("garbage decoded")
	}
}

// A task's trace context travels in the message headers, not the body, and
// comes back out of a delivery (and so through every retry tier).
func TestEnvelopeCarriesTraceContext(t *testing.T) {
	parent := "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	in := rabbit.Envelope{Task: tasks.Task{ID: "t1", Kind: tasks.KindNotify, Room: "r", User: "bob", Body: []byte(`{}`),
		Trace: map[string]string{"traceparent": parent}}}
	p, err := in.Publishing()
	if err != nil {
		t.Fatal(err)
	}
	if p.Headers["traceparent"] != parent || strings.Contains(string(p.Body), "traceparent") {
		t.Fatalf("headers %v, body %s: want traceparent in the headers only", p.Headers, p.Body)
	}
	out, err := rabbit.DecodeDelivery(amqp.Delivery{Headers: p.Headers, Body: p.Body})
	if err != nil {
		t.Fatal(err)
	}
	if out.Task.Trace["traceparent"] != parent || len(out.Task.Trace) != 1 {
		t.Fatalf("trace %v after the round trip", out.Task.Trace)
	}
	if plain, _ := rabbit.DecodeDelivery(amqp.Delivery{Body: p.Body}); plain.Task.Trace != nil {
		t.Fatalf("trace %v from a delivery without headers", plain.Task.Trace)
	}
}

// TestDelayTierReturnsToMain declares twice (idempotent), then checks a
// message in a delay queue comes back to the main queue after its TTL with
// its headers.
func TestDelayTierReturnsToMain(t *testing.T) {
	rc := taskstest.Rabbit(t, 100*time.Millisecond, 200*time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := rabbit.Setup(ctx, rc); err != nil {
		t.Fatalf("declaring again: %v", err)
	}
	p, err := rabbit.NewPublisher(ctx, rc)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	topo := rc.Topology()
	env := rabbit.Envelope{Task: tasks.Task{ID: "t-delay", Kind: tasks.KindNotify, Room: "r", User: "bob"}, Attempt: 2, LastError: "503"}
	sent := time.Now()
	if err := p.Publish(ctx, topo.Delay(1), env); err != nil {
		t.Fatal(err)
	}
	conn, err := rabbit.Dial(ctx, rc.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	var d amqp.Delivery
	testsvc.Eventually(t, 10*time.Second, "task back in the main queue", func() bool {
		var ok bool
		d, ok, err = ch.Get(topo.Main(), true)
		if err != nil {
			t.Fatal(err)
		}
		return ok
	})
	if waited := time.Since(sent); waited < 200*time.Millisecond {
		t.Errorf("back after %s, before the tier's 200ms", waited)
	}
	got, err := rabbit.DecodeDelivery(d)
	if err != nil || got.Task.ID != "t-delay" || got.Attempt != 2 || got.LastError != "503" {
		t.Errorf("returned %+v, %v", got, err)
	}
}

// TestRejectedGoesToDLQ: a delivery the worker rejects outright (undecodable)
// reaches the DLQ through the main queue's dead-letter route, and ListDLQ
// explains it.
func TestRejectedGoesToDLQ(t *testing.T) {
	rc := taskstest.Rabbit(t, time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	p, err := rabbit.NewPublisher(ctx, rc)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	topo := rc.Topology()
	if err := p.PublishRaw(ctx, topo.Main(), amqp.Publishing{MessageId: "junk", Body: []byte("not json"), DeliveryMode: amqp.Persistent}); err != nil {
		t.Fatal(err)
	}
	conn, err := rabbit.Dial(ctx, rc.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	var d amqp.Delivery
	testsvc.Eventually(t, 10*time.Second, "junk in the main queue", func() bool {
		var ok bool
		d, ok, err = ch.Get(topo.Main(), false)
		return err == nil && ok
	})
	if err := d.Nack(false, false); err != nil {
		t.Fatal(err)
	}
	var ds []rabbit.DeadTask
	testsvc.Eventually(t, 10*time.Second, "junk in the DLQ", func() bool {
		ds, err = rabbit.ListDLQ(ctx, rc, 0)
		return err == nil && len(ds) == 1
	})
	if ds[0].ID != "junk" || ds[0].Summary != "undecodable task" || ds[0].LastError == "" {
		t.Errorf("dead junk %+v", ds[0])
	}
}

// FuzzDecodeDelivery: whatever sits in a queue, decoding never panics, and
// a decoded task re-encodes to one that decodes the same.
func FuzzDecodeDelivery(f *testing.F) {
	f.Add([]byte(`{"id":"t","kind":"webhook","url":"http://x/","body":{"a":1}}`), int32(2))
	f.Add([]byte(`{`), int32(0))
	f.Fuzz(func(t *testing.T, body []byte, attempt int32) {
		e, err := rabbit.DecodeDelivery(amqp.Delivery{Body: body, Headers: amqp.Table{rabbit.HeaderAttempt: attempt}})
		if err != nil {
			return
		}
		if e.Attempt < 1 {
			t.Fatalf("attempt %d", e.Attempt)
		}
		p, err := e.Publishing()
		if err != nil {
			return // e.g. a body that is not valid JSON once unquoted
		}
		again, err := rabbit.DecodeDelivery(amqp.Delivery{Body: p.Body, Headers: p.Headers})
		if err != nil || again.Task.ID != e.Task.ID || again.Attempt != e.Attempt {
			t.Fatalf("re-decode %+v vs %+v: %v", again, e, err)
		}
	})
}
