package rabbit

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/rtstack/rtstack/tasks"
)

// DefaultPrefix prefixes every queue name.
const DefaultPrefix = "rtstack."

// DefaultURL is RABBIT_URL's default.
const DefaultURL = "amqp://guest:guest@127.0.0.1:5672/" //nolint:gosec // G101: RabbitMQ's documented local default, the contract's RABBIT_URL default

// Config says where RabbitMQ is and how the topology is named.
type Config struct {
	// URL of RabbitMQ; empty means DefaultURL.
	URL string
	// Prefix of every queue name; empty means DefaultPrefix.
	Prefix string
	// RetryDelays are the waits between attempts, one delay queue each;
	// nil means tasks.DefaultRetryDelays. Attempts = len + 1.
	RetryDelays []time.Duration
}

// Validate joins every problem of c once its defaults are applied.
func (c Config) Validate() error {
	c = c.withDefaults()
	var errs []error
	for _, d := range c.RetryDelays {
		if d <= 0 {
			errs = append(errs, fmt.Errorf("rabbit: retry delay %s is not positive", d))
		}
	}
	return errors.Join(errs...)
}

// withDefaults returns c with every empty field set to its default; the
// delays are a copy, never shared with the caller's or the default slice.
func (c Config) withDefaults() Config {
	c.URL = cmp.Or(c.URL, DefaultURL)
	c.Prefix = cmp.Or(c.Prefix, DefaultPrefix)
	if len(c.RetryDelays) == 0 {
		c.RetryDelays = tasks.DefaultRetryDelays
	}
	c.RetryDelays = slices.Clone(c.RetryDelays)
	return c
}

// URLOrDefault is URL, or DefaultURL when empty.
func (c Config) URLOrDefault() string { return c.url() }

func (c Config) url() string { return c.withDefaults().URL }

// Topology returns the queue names and tiers of c.
func (c Config) Topology() Topology {
	c = c.withDefaults()
	return Topology{Prefix: c.Prefix, Delays: c.RetryDelays}
}

// Topology names the queues of one prefix and its retry tiers.
type Topology struct {
	Prefix string
	Delays []time.Duration
}

// Main is the queue workers consume.
func (t Topology) Main() string { return t.Prefix + "tasks" }

// Dead is the dead-letter queue.
func (t Topology) Dead() string { return t.Prefix + "tasks.dead" }

// Delay is the queue of retry tier i (0-based): messages wait Delays[i] in
// it, then go back to Main.
func (t Topology) Delay(i int) string {
	return fmt.Sprintf("%stasks.delay.%dms", t.Prefix, t.Delays[i].Milliseconds())
}

// MaxAttempts is how many times a task is tried before the DLQ.
func (t Topology) MaxAttempts() int { return len(t.Delays) + 1 }

// Queues lists every queue of t.
func (t Topology) Queues() []string {
	qs := []string{t.Main(), t.Dead()}
	for i := range t.Delays {
		qs = append(qs, t.Delay(i))
	}
	return qs
}

// Declare creates t's queues if missing; declaring again with the same
// names and arguments is a no-op, so every reactor and worker declares at
// start.
func (t Topology) Declare(ch *amqp.Channel) error {
	if _, err := ch.QueueDeclare(t.Dead(), true, false, false, false, nil); err != nil {
		return fmt.Errorf("declare %s: %w", t.Dead(), err)
	}
	// A worker that rejects a delivery outright (undecodable) sends it to
	// the DLQ through the main queue's dead-letter settings.
	if _, err := ch.QueueDeclare(t.Main(), true, false, false, false, amqp.Table{
		"x-dead-letter-exchange":    "",
		"x-dead-letter-routing-key": t.Dead(),
	}); err != nil {
		return fmt.Errorf("declare %s: %w", t.Main(), err)
	}
	for i, d := range t.Delays {
		if _, err := ch.QueueDeclare(t.Delay(i), true, false, false, false, amqp.Table{
			"x-message-ttl":             d.Milliseconds(),
			"x-dead-letter-exchange":    "",
			"x-dead-letter-routing-key": t.Main(),
		}); err != nil {
			return fmt.Errorf("declare %s: %w", t.Delay(i), err)
		}
	}
	return nil
}

// Delete removes t's queues with their messages (tests clean up with it).
func (t Topology) Delete(ch *amqp.Channel) error {
	var errs []error
	for _, q := range t.Queues() {
		if _, err := ch.QueueDelete(q, false, false, false); err != nil {
			errs = append(errs, fmt.Errorf("delete %s: %w", q, err))
		}
	}
	return errors.Join(errs...)
}

// Dial connects to url, giving up when ctx ends or after 10 s.
func Dial(ctx context.Context, url string) (*amqp.Connection, error) {
	timeout := 10 * time.Second
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) < timeout {
		timeout = max(time.Until(dl), time.Millisecond)
	}
	conn, err := amqp.DialConfig(url, amqp.Config{
		Heartbeat: 10 * time.Second,
		Locale:    "en_US",
		Dial:      amqp.DefaultDial(timeout),
	})
	if err != nil {
		return nil, fmt.Errorf("dial RabbitMQ: %w", err)
	}
	return conn, nil
}

// Setup dials c's RabbitMQ and declares its topology: the step each
// component does at start.
func Setup(ctx context.Context, c Config) error {
	conn, err := Dial(ctx, c.url())
	if err != nil {
		return err
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		return fmt.Errorf("open channel: %w", err)
	}
	return c.Topology().Declare(ch)
}
