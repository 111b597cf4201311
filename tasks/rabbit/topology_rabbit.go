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

// ErrClassicQueues: a queue of the topology exists with other arguments
// (a classic queue of a deployment from before quorum queues). RabbitMQ
// cannot change a queue's type; docs/tasks.md describes the migration.
var ErrClassicQueues = errors.New("a task queue exists with other arguments (a classic queue from an older rtstack): drain and delete the old queues or use another RABBIT_PREFIX, see docs/tasks.md")

// QuorumSupported reports whether the server of conn has quorum queues with
// at-least-once dead-lettering and message TTL (RabbitMQ 3.10 or later).
func QuorumSupported(conn *amqp.Connection) bool {
	v, _ := conn.Properties["version"].(string)
	var major, minor int
	if _, err := fmt.Sscanf(v, "%d.%d", &major, &minor); err != nil {
		return false
	}
	return major > 3 || major == 3 && minor >= 10
}

// queueArgs are the arguments of a queue that dead-letters to dlx (""
// for none). On quorum queues dead-lettering is at-least-once: RabbitMQ
// keeps a message in the source queue until the target confirmed it,
// which needs overflow reject-publish (a full queue refuses publishes, and
// the publisher sees the nack, instead of dropping the oldest).
func queueArgs(quorum bool, dlx string) amqp.Table {
	args := amqp.Table{}
	if quorum {
		args["x-queue-type"] = "quorum"
	}
	if dlx != "" {
		args["x-dead-letter-exchange"] = ""
		args["x-dead-letter-routing-key"] = dlx
		if quorum {
			args["x-dead-letter-strategy"] = "at-least-once"
			args["x-overflow"] = "reject-publish"
		}
	}
	return args
}

// Declare creates t's queues on ch (a channel of conn) if missing:
// quorum queues where the server supports them (QuorumSupported), classic
// otherwise. Declaring again with the same names and arguments is a no-op,
// so every reactor and worker declares at start; a queue that exists with
// other arguments fails with ErrClassicQueues.
func (t Topology) Declare(conn *amqp.Connection, ch *amqp.Channel) error {
	quorum := QuorumSupported(conn)
	declare := func(name string, args amqp.Table) error {
		if _, err := ch.QueueDeclare(name, true, false, false, false, args); err != nil {
			var ae *amqp.Error
			if errors.As(err, &ae) && ae.Code == amqp.PreconditionFailed {
				return fmt.Errorf("declare %s: %w: %w", name, ErrClassicQueues, err)
			}
			return fmt.Errorf("declare %s: %w", name, err)
		}
		return nil
	}
	if err := declare(t.Dead(), queueArgs(quorum, "")); err != nil {
		return err
	}
	// A worker that rejects a delivery outright (undecodable) sends it to
	// the DLQ through the main queue's dead-letter settings.
	if err := declare(t.Main(), queueArgs(quorum, t.Dead())); err != nil {
		return err
	}
	for i, d := range t.Delays {
		args := queueArgs(quorum, t.Main())
		args["x-message-ttl"] = d.Milliseconds()
		if err := declare(t.Delay(i), args); err != nil {
			return err
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
	return c.Topology().Declare(conn, ch)
}
