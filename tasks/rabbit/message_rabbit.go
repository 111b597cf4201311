package rabbit

import (
	"encoding/json"
	"fmt"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/rtstack/rtstack/tasks"
)

// Headers of task messages.
const (
	// HeaderAttempt is the 1-based attempt this delivery is; absent means 1.
	HeaderAttempt = "x-rtstack-attempt"
	// HeaderError is the error of the previous attempt.
	HeaderError = "x-rtstack-error"
	// HeaderKind is the task kind (also in the body), for tools that only
	// show headers.
	HeaderKind = "x-rtstack-kind"
)

// maxErrorBytes bounds the error kept in a header.
const maxErrorBytes = 1024

// Envelope is a task as it travels: the task and the attempt it is on.
type Envelope struct {
	Task      tasks.Task
	Attempt   int    // 1-based
	LastError string // the error of attempt Attempt-1, or of the last attempt in the DLQ
}

// Publishing encodes e as a persistent message whose id is the task id.
func (e Envelope) Publishing() (amqp.Publishing, error) {
	// A webhook task's secret is sealed (tasks.Task.SealedSecret): the
	// queues never hold it in the clear.
	body, err := json.Marshal(e.Task)
	if err != nil {
		return amqp.Publishing{}, fmt.Errorf("encode task %s: %w", e.Task.ID, err)
	}
	attempt := max(e.Attempt, 1)
	h := amqp.Table{HeaderAttempt: int32(attempt), HeaderKind: string(e.Task.Kind)}
	if e.LastError != "" {
		msg := e.LastError
		if len(msg) > maxErrorBytes {
			msg = msg[:maxErrorBytes]
		}
		h[HeaderError] = msg
	}
	for k, v := range e.Task.Trace {
		h[k] = v
	}
	return amqp.Publishing{
		Headers:      h,
		ContentType:  "application/json",
		DeliveryMode: amqp.Persistent,
		MessageId:    e.Task.ID,
		Type:         string(e.Task.Kind),
		Timestamp:    time.Now(),
		Body:         body,
	}, nil
}

// DecodeDelivery reads the task and attempt of d. Messages without the
// attempt header (published by an old version, or dead-lettered by
// RabbitMQ) count as attempt 1.
func DecodeDelivery(d amqp.Delivery) (Envelope, error) {
	var e Envelope
	var err error
	if e.Task, err = decodeTask(d.Body); err != nil {
		return e, fmt.Errorf("decode task %s: %w", d.MessageId, err)
	}
	e.Attempt = headerInt(d.Headers[HeaderAttempt])
	if e.Attempt < 1 {
		e.Attempt = 1
	}
	e.LastError, _ = d.Headers[HeaderError].(string)
	for _, k := range tasks.TraceFields {
		if v, ok := d.Headers[k].(string); ok {
			if e.Task.Trace == nil {
				e.Task.Trace = map[string]string{}
			}
			e.Task.Trace[k] = v
		}
	}
	return e, nil
}

func headerInt(v any) int {
	switch n := v.(type) {
	case int32:
		return int(n)
	case int64:
		return int(n)
	case int:
		return n
	case int16:
		return int(n)
	case int8:
		return int(n)
	case uint8:
		return int(n)
	case uint16:
		return int(n)
	case uint32:
		return int(n)
	}
	return 0
}
