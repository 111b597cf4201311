package rabbit

import (
	"context"
	"errors"
	"fmt"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/rtstack/rtstack/tasks"
)

// DeadTask is a task in the dead-letter queue, as an operator sees it.
type DeadTask struct {
	ID        string     `json:"id"`
	Kind      tasks.Kind `json:"kind"`
	Room      string     `json:"room"`
	Attempts  int        `json:"attempts"`
	LastError string     `json:"last_error"`
	Summary   string     `json:"summary"` // what the task does, without secrets
}

// DefaultListLimit bounds ListDLQ when limit is 0.
const DefaultListLimit = 1000

// ListDLQ returns up to limit (0: DefaultListLimit) tasks of the DLQ, oldest
// first, without removing them: it takes them unacknowledged and gives them
// all back (requeued in their places) before it returns.
func ListDLQ(ctx context.Context, cfg Config, limit int) ([]DeadTask, error) {
	if limit <= 0 {
		limit = DefaultListLimit
	}
	topo := cfg.Topology()
	conn, err := Dial(ctx, cfg.url())
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		return nil, fmt.Errorf("open channel: %w", err)
	}
	if err := topo.Declare(conn, ch); err != nil {
		return nil, err
	}
	var (
		out  []DeadTask
		last uint64
	)
	for len(out) < limit && ctx.Err() == nil {
		d, ok, err := ch.Get(topo.Dead(), false)
		if err != nil {
			return nil, fmt.Errorf("browse %s: %w", topo.Dead(), err)
		}
		if !ok {
			break
		}
		last = d.DeliveryTag
		out = append(out, deadTask(d))
	}
	if last > 0 {
		// Closing the channel would requeue them too; nacking says so.
		if err := ch.Nack(last, true, true); err != nil {
			return nil, fmt.Errorf("give back %s: %w", topo.Dead(), err)
		}
	}
	return out, ctx.Err()
}

func deadTask(d amqp.Delivery) DeadTask {
	e, err := DecodeDelivery(d)
	if err != nil {
		return DeadTask{ID: d.MessageId, Attempts: 1, LastError: rejectReason(d, err), Summary: "undecodable task"}
	}
	last := e.LastError
	if last == "" {
		last = rejectReason(d, nil)
	}
	return DeadTask{
		ID: e.Task.ID, Kind: e.Task.Kind, Room: e.Task.Room, Attempts: e.Attempt,
		LastError: last, Summary: e.Task.Summary(),
	}
}

// rejectReason explains a message RabbitMQ dead-lettered itself (x-death).
func rejectReason(d amqp.Delivery, err error) string {
	if deaths, ok := d.Headers["x-death"].([]any); ok && len(deaths) > 0 {
		if t, ok := deaths[0].(amqp.Table); ok {
			if err != nil {
				return fmt.Sprintf("%v from %v: %v", t["reason"], t["queue"], err)
			}
			return fmt.Sprintf("%v from %v", t["reason"], t["queue"])
		}
	}
	if err != nil {
		return err.Error()
	}
	return ""
}

// ReplayDLQ moves the tasks that are in the DLQ when it starts back to the
// main queue with their attempt count reset, each confirmed before it is
// removed from the DLQ (a crash in between duplicates one task, which the
// workers' completion record absorbs; it never loses one). It returns how
// many it moved. Tasks that fail again while it runs come back to the DLQ
// and are not replayed twice by one call.
func ReplayDLQ(ctx context.Context, cfg Config) (int, error) {
	if err := cfg.Validate(); err != nil {
		return 0, err
	}
	topo := cfg.Topology()
	conn, err := Dial(ctx, cfg.url())
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	pub, err := OpenPublisher(conn, topo)
	if err != nil {
		return 0, err
	}
	ch, err := conn.Channel()
	if err != nil {
		return 0, fmt.Errorf("open channel: %w", err)
	}
	if _, err := ch.QueueDeclarePassive(topo.Dead(), true, false, false, false, nil); err != nil {
		return 0, fmt.Errorf("inspect %s: %w", topo.Dead(), err)
	}
	// What the DLQ holds when the replay begins comes with the first task
	// taken (the count of a passive declare can lag a requeue on a quorum
	// queue, e.g. right after ListDLQ gave its tasks back).
	n, limit := 0, -1
	for limit < 0 || n < limit {
		if err := ctx.Err(); err != nil {
			return n, err
		}
		d, ok, err := ch.Get(topo.Dead(), false)
		if err != nil {
			return n, fmt.Errorf("take from %s: %w", topo.Dead(), err)
		}
		if !ok {
			break
		}
		if limit < 0 {
			limit = int(d.MessageCount) + 1
		}
		msg := amqp.Publishing{
			Headers: amqp.Table{}, ContentType: d.ContentType, DeliveryMode: amqp.Persistent,
			MessageId: d.MessageId, Type: d.Type, Timestamp: d.Timestamp, Body: d.Body,
		}
		if e, err := DecodeDelivery(d); err == nil {
			e.Attempt, e.LastError = 1, ""
			if msg, err = e.Publishing(); err != nil {
				return n, errors.Join(err, d.Nack(false, true))
			}
		}
		if err := pub.PublishRaw(ctx, topo.Main(), msg); err != nil {
			return n, errors.Join(err, d.Nack(false, true))
		}
		if err := d.Ack(false); err != nil {
			return n, fmt.Errorf("remove replayed task from %s: %w", topo.Dead(), err)
		}
		n++
	}
	return n, nil
}

// PurgeDLQ deletes every task in the DLQ and returns how many.
func PurgeDLQ(ctx context.Context, cfg Config) (int, error) {
	topo := cfg.Topology()
	conn, err := Dial(ctx, cfg.url())
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		return 0, fmt.Errorf("open channel: %w", err)
	}
	if err := topo.Declare(conn, ch); err != nil {
		return 0, err
	}
	n, err := ch.QueuePurge(topo.Dead(), false)
	if err != nil {
		return 0, fmt.Errorf("purge %s: %w", topo.Dead(), err)
	}
	return n, nil
}
