package rabbit_test

import (
	"context"
	"errors"
	"os/exec"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/rtstack/rtstack/tasks"
	"github.com/rtstack/rtstack/tasks/internal/taskstest"
	"github.com/rtstack/rtstack/tasks/rabbit"
)

// A task published to a queue that was deleted is confirmed by RabbitMQ
// and returned: the publisher must report it, not count it as sent.
func TestReturnedPublishIsAnError(t *testing.T) {
	rc := taskstest.Rabbit(t, 100*time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	p, err := rabbit.NewPublisher(ctx, rc)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	task := tasks.Task{ID: "t-returned", Kind: tasks.KindNotify, Room: "r", User: "bob", Body: []byte(`{}`)}
	if err := p.PublishTasks(ctx, task); err != nil {
		t.Fatalf("publish to the live queue: %v", err)
	}
	deleteQueue(t, rc, rc.Topology().Main())
	many := make([]tasks.Task, 300) // more than one confirm chunk
	for i := range many {
		many[i] = task
	}
	if err := p.PublishTasks(ctx, many...); !errors.Is(err, rabbit.ErrReturned) {
		t.Fatalf("publish to a deleted queue = %v, want ErrReturned", err)
	}
	// Once the topology is back, the same publisher works again.
	if err := rabbit.Setup(ctx, rc); err != nil {
		t.Fatal(err)
	}
	if err := p.PublishTasks(ctx, task); err != nil {
		t.Fatalf("publish after the queue is back: %v", err)
	}
}

// channel opens a channel on a connection of its own, closed when t ends.
func channel(t *testing.T, url string) (*amqp.Connection, *amqp.Channel) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := rabbit.Dial(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	return conn, ch
}

func deleteQueue(t *testing.T, rc rabbit.Config, name string) {
	t.Helper()
	_, ch := channel(t, rc.URL)
	if _, err := ch.QueueDelete(name, false, false, false); err != nil {
		t.Fatal(err)
	}
}

// On RabbitMQ 3.10+ every queue is a quorum queue, and those that
// dead-letter do it at least once with overflow reject-publish.
func TestQueuesAreQuorumWithAtLeastOnceDeadLettering(t *testing.T) {
	rc := taskstest.Rabbit(t, 100*time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, ch := channel(t, rc.URL)
	if !rabbit.QuorumSupported(conn) {
		t.Fatalf("RabbitMQ %v: the test machine runs 3.10+, quorum queues expected", conn.Properties["version"])
	}
	out, err := exec.Command("rabbitmqctl", "list_queues", "-q", "--no-table-headers", "name", "type", "arguments").Output()
	if err != nil {
		t.Fatalf("rabbitmqctl list_queues: %v", err)
	}
	found := 0
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 || !strings.HasPrefix(f[0], rc.Prefix) {
			continue
		}
		found++
		if f[1] != "quorum" {
			t.Errorf("%s is a %s queue", f[0], f[1])
		}
		if f[0] != rc.Topology().Dead() && (!strings.Contains(line, "at-least-once") || !strings.Contains(line, "reject-publish")) {
			t.Errorf("%s lacks at-least-once dead-lettering: %s", f[0], line)
		}
	}
	if found != len(rc.Topology().Queues()) {
		t.Fatalf("found %d queues of %s, want %d:\n%s", found, rc.Prefix, len(rc.Topology().Queues()), out)
	}

	// A classic queue of an older deployment under the same name is named
	// in the error, not silently used.
	old := rabbit.Config{URL: rc.URL, Prefix: rc.Prefix + "old.", RetryDelays: rc.RetryDelays}
	if _, err := ch.QueueDeclare(old.Topology().Dead(), true, false, false, false, amqp.Table{"x-queue-type": "classic"}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { deleteQueue(t, old, old.Topology().Dead()) })
	if err := rabbit.Setup(ctx, old); !errors.Is(err, rabbit.ErrClassicQueues) {
		t.Fatalf("declare over a classic queue = %v, want ErrClassicQueues", err)
	}
}
