package worker

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	amqp "github.com/rabbitmq/amqp091-go"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/rtstack/rtstack/infra/telemetry"
	"github.com/rtstack/rtstack/internal/egress"
	"github.com/rtstack/rtstack/internal/keyring"
	"github.com/rtstack/rtstack/internal/retry"
	"github.com/rtstack/rtstack/tasks"
	"github.com/rtstack/rtstack/tasks/rabbit"
)

// tracer is looked up at each use: the provider is installed after package init.
func tracer() trace.Tracer { return telemetry.Tracer("github.com/rtstack/rtstack/tasks/worker") }

// Notifier reaches users connected to a gateway. The presence tracker
// satisfies it.
type Notifier interface {
	// UserOnline reports whether user has a live connection on any gateway.
	UserOnline(ctx context.Context, user string) (bool, error)
	// Notify sends frame (one JSON object) to every connection of user.
	Notify(ctx context.Context, user string, frame []byte) error
}

// Defaults of Config.
const (
	DefaultPrefetch = 256
	MaxPrefetch     = 1000
	DefaultTimeout  = 10 * time.Second
)

// Config of a Worker.
type Config struct {
	// RabbitURL of RabbitMQ; empty means rabbit.DefaultURL.
	RabbitURL string
	// Prefix of the queue names; empty means rabbit.DefaultPrefix.
	Prefix string
	// RetryDelays (RETRY_DELAYS); nil means tasks.DefaultRetryDelays. Must
	// match the reactor's: they name the delay queues.
	RetryDelays []time.Duration
	// Prefetch bounds the tasks in progress at once (WORKER_PREFETCH), each
	// on its own goroutine; 0 means DefaultPrefetch, at most MaxPrefetch.
	Prefetch int
	// Timeout bounds one attempt (the HTTP request included) and each
	// completion query (a batch of checks or records); 0 means
	// DefaultTimeout.
	Timeout time.Duration
	// AllowPrivate lets webhooks reach loopback and private addresses
	// (WEBHOOK_ALLOW_PRIVATE); false by default.
	AllowPrivate bool
	// NotifyURL receives mention notifications of offline users as a POST
	// (NOTIFY_URL); empty means offline users are not notified. It is held
	// to the same target rules as webhooks (AllowPrivate) and reached with
	// the same client: no proxy, no redirects, the dial-time guard.
	NotifyURL string
	// Keyring opens the sealed webhook secrets to sign deliveries; nil
	// dead-letters every webhook task (nothing to sign with).
	Keyring *keyring.Keyring
	// Notifier reaches online users; nil means every user counts as
	// offline.
	Notifier Notifier
	// Pool is the Postgres pool of the completion records; the Worker does
	// not close it, and its batches use up to 4 connections of it at once.
	// When nil, PostgresURL is used and the Worker owns its pool, of at
	// least 4 connections.
	Pool *pgxpool.Pool
	// PostgresURL is used when Pool is nil.
	PostgresURL string
	// HTTPClient delivers webhooks; nil means NewHTTPClient(AllowPrivate).
	// A client given here carries its own address guard.
	HTTPClient *http.Client
	// Logger receives the logs; nil discards them (the binary injects its own).
	Logger *slog.Logger
	// Registerer for the metrics; nil means they are not registered.
	Registerer prometheus.Registerer
}

// Validate joins every problem of c once its defaults are applied.
func (c Config) Validate() error {
	c = c.withDefaults()
	var errs []error
	if c.Pool == nil && c.PostgresURL == "" {
		errs = append(errs, errors.New("worker: Pool or PostgresURL is required"))
	}
	if c.Prefetch < 1 || c.Prefetch > MaxPrefetch {
		errs = append(errs, fmt.Errorf("worker: prefetch %d outside 1..%d", c.Prefetch, MaxPrefetch))
	}
	if c.Timeout < 0 {
		errs = append(errs, fmt.Errorf("worker: negative timeout %s", c.Timeout))
	}
	if c.NotifyURL != "" {
		if err := egress.ValidateURL(c.NotifyURL, c.AllowPrivate); err != nil {
			errs = append(errs, fmt.Errorf("worker: notify url: %w", err))
		}
	}
	errs = append(errs, c.rabbit().Validate())
	return errors.Join(errs...)
}

// withDefaults returns c with every zero field set to its default.
func (c Config) withDefaults() Config {
	c.Prefetch = cmp.Or(c.Prefetch, DefaultPrefetch)
	c.Timeout = cmp.Or(c.Timeout, DefaultTimeout)
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

func (c Config) rabbit() rabbit.Config {
	return rabbit.Config{URL: c.RabbitURL, Prefix: c.Prefix, RetryDelays: c.RetryDelays}
}

// Worker consumes and performs tasks. Run it once.
type Worker struct {
	cfg      Config
	topo     rabbit.Topology
	log      *slog.Logger
	pool     *pgxpool.Pool
	ownsPool bool
	store    doneStore
	done     *doneBatcher
	hooks    *http.Client // webhooks and NotifyURL, behind the address guard
	m        *metrics

	mu       sync.Mutex // guards inflight
	inflight map[string]chan struct{}
}

// New checks cfg and builds a Worker; it connects nothing until Run.
func New(cfg Config) (*Worker, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	w := &Worker{
		cfg: cfg, topo: cfg.rabbit().Topology(), log: cfg.Logger.With("component", "worker"),
		hooks: cfg.HTTPClient, inflight: map[string]chan struct{}{},
	}
	if w.hooks == nil {
		w.hooks = NewHTTPClient(cfg.AllowPrivate)
	}
	w.hooks = traced(w.hooks)
	w.pool = cfg.Pool
	if w.pool == nil {
		pool, err := newPool(cfg.PostgresURL)
		if err != nil {
			return nil, fmt.Errorf("worker: postgres: %w", err)
		}
		w.pool, w.ownsPool = pool, true
	}
	w.store = doneStore{pool: w.pool}
	w.done = newDoneBatcher(w.store, cfg.Timeout)
	m, err := newMetrics(cfg.Registerer, cfg.rabbit())
	if err != nil {
		if w.ownsPool {
			w.pool.Close()
		}
		return nil, err
	}
	w.m = m
	return w, nil
}

// newPool opens the worker's own pool with a connection for each batch
// that may be in flight (checks and records), so no batch waits for a
// connection behind another; pool_max_conns in url may raise it.
func newPool(url string) (*pgxpool.Pool, error) {
	pc, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, err
	}
	pc.MaxConns = max(pc.MaxConns, 2*doneParallel)
	return pgxpool.NewWithConfig(context.Background(), pc)
}

// Run consumes tasks until ctx ends, reconnecting to RabbitMQ and Postgres
// with backoff when they fail. On shutdown it stops consuming, lets the
// tasks in progress finish (each bounded by Timeout) and returns nil.
func (w *Worker) Run(ctx context.Context) error {
	if w.ownsPool {
		defer w.pool.Close()
	}
	if w.m.queues != nil {
		defer w.m.queues.Close()
	}
	backoff := retry.Backoff{Min: 100 * time.Millisecond, Max: 5 * time.Second, Jitter: true}
	for {
		if err := w.store.ensure(ctx); err == nil {
			break
		} else if ctx.Err() == nil {
			w.log.Warn("completion records unavailable, retrying", "err", err)
		}
		if !backoff.Wait(ctx, nil) {
			return nil
		}
	}
	backoff.Reset()
	// The batchers outlive the sessions: deliveries in progress at
	// shutdown still record their outcome, so they stop last.
	bctx, stopBatchers := context.WithCancel(context.WithoutCancel(ctx))
	var wg sync.WaitGroup
	// Several queries of a kind run at once: one batch's commit waits on
	// the WAL flush while the next batch fills, and Postgres flushes
	// concurrent commits together.
	for range doneParallel {
		wg.Add(2)
		go func() { defer wg.Done(); w.done.run(bctx, w.done.checks, w.store.checkMany) }()
		go func() { defer wg.Done(); w.done.run(bctx, w.done.marks, w.store.markMany) }()
	}
	defer func() { stopBatchers(); wg.Wait() }()
	for {
		started := time.Now()
		err := w.session(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if time.Since(started) > 10*time.Second {
			backoff.Reset()
		}
		w.log.Warn("rabbitmq session ended, reconnecting", "err", err)
		if !backoff.Wait(ctx, nil) {
			return nil
		}
	}
}

// session consumes on one connection until it fails or ctx ends, and waits
// for the deliveries it started.
func (w *Worker) session(ctx context.Context) error {
	conn, err := rabbit.Dial(ctx, w.cfg.rabbit().URLOrDefault())
	if err != nil {
		return err
	}
	defer conn.Close()
	pub, err := rabbit.OpenPublisher(conn, w.topo)
	if err != nil {
		return err
	}
	ch, err := conn.Channel()
	if err != nil {
		return fmt.Errorf("open channel: %w", err)
	}
	if err := ch.Qos(w.cfg.Prefetch, 0, false); err != nil {
		return fmt.Errorf("set prefetch: %w", err)
	}
	deliveries, err := ch.Consume(w.topo.Main(), "", false, false, false, false, nil)
	if err != nil {
		return fmt.Errorf("consume %s: %w", w.topo.Main(), err)
	}
	w.log.Info("consuming tasks", "queue", w.topo.Main(), "prefetch", w.cfg.Prefetch)
	// Deferred in this order, they run: handlers finish, their acks go
	// out, then the connection closes.
	acks := newAcker(ch, w.cfg.Prefetch, ackHold)
	defer acks.close()
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		select {
		case <-ctx.Done():
			// Stop taking deliveries; those in progress finish and ack
			// before the connection closes (deferred above, after wg.Wait).
			_ = ch.Cancel("", false)
			return ctx.Err()
		case d, ok := <-deliveries:
			if !ok {
				return fmt.Errorf("consumer of %s closed: %w", w.topo.Main(), amqp.ErrClosed)
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				// Work in progress outlives shutdown, bounded by Timeout,
				// so a stopping worker finishes what it started.
				acks.settle(d.DeliveryTag, w.handle(context.WithoutCancel(ctx), pub, d))
			}()
		}
	}
}

// Outcomes of a delivery, the "outcome" label.
const (
	outcomeDone     = "done"
	outcomeSkipped  = "skipped" // already recorded done
	outcomeRetry    = "retry"
	outcomeDead     = "dead"
	outcomeRequeued = "requeued" // could not record the outcome; RabbitMQ redelivers
)

// handle performs one delivery and returns how to settle it: an ack only
// once its outcome is durable.
func (w *Worker) handle(ctx context.Context, pub *rabbit.Publisher, d amqp.Delivery) settlement {
	env, err := rabbit.DecodeDelivery(d)
	if err == nil {
		err = env.Task.Validate()
	}
	if err != nil {
		// Permanent: to the DLQ through the main queue's dead-letter route.
		w.log.Error("undecodable task, dead-lettered", "task_id", d.MessageId, "err", err)
		w.m.outcome("unknown", outcomeDead)
		return settleReject
	}
	t := env.Task
	// The task's trace: its spans continue it and its log lines carry its
	// trace_id.
	ctx = telemetry.Propagator().Extract(ctx, propagation.MapCarrier(t.Trace))
	release := w.claim(ctx, t.ID)
	defer release()

	done, err := w.done.isDone(t.ID)
	if err != nil {
		return w.requeue(ctx, w.taskLog(env), t.Kind, err)
	}
	if done {
		w.taskLog(env).DebugContext(ctx, "task already done, skipped")
		w.m.outcome(string(t.Kind), outcomeSkipped)
		return settleAck
	}

	start := time.Now()
	err = w.perform(ctx, t)
	w.m.duration(string(t.Kind), time.Since(start))
	if err != nil {
		return w.failed(ctx, pub, env, err)
	}
	err = w.done.markDone(t.ID, string(t.Kind), env.Attempt)
	if err != nil {
		return w.requeue(ctx, w.taskLog(env), t.Kind, err)
	}
	w.m.outcome(string(t.Kind), outcomeDone)
	return settleAck
}

// taskLog is the logger of env's lines. It is made only when a line is
// logged: a logger's With formats its attributes, which a task that succeeds
// never needs.
func (w *Worker) taskLog(env rabbit.Envelope) *slog.Logger {
	return w.log.With("task_id", env.Task.ID, "kind", env.Task.Kind, "attempt", env.Attempt)
}

// requeue gives a delivery whose outcome could not be made durable
// (Postgres or RabbitMQ trouble) back after a pause rather than spin.
func (w *Worker) requeue(ctx context.Context, log *slog.Logger, kind tasks.Kind, err error) settlement {
	log.WarnContext(ctx, "task outcome not recorded, requeueing", "err", err)
	w.m.outcome(string(kind), outcomeRequeued)
	select {
	case <-ctx.Done():
	case <-time.After(time.Second):
	}
	return settleRequeue
}

// failed publishes a failed attempt to its retry tier, or to the DLQ when
// it was the last or the failure is permanent; the delivery is acked once
// that copy is confirmed.
func (w *Worker) failed(ctx context.Context, pub *rabbit.Publisher, env rabbit.Envelope, err error) settlement {
	log := w.taskLog(env)
	next := rabbit.Envelope{Task: env.Task, Attempt: env.Attempt + 1, LastError: err.Error()}
	queue, outcome := "", outcomeRetry
	var perm *permanentError
	if errors.As(err, &perm) || env.Attempt >= w.topo.MaxAttempts() {
		next.Attempt = env.Attempt
		queue, outcome = w.topo.Dead(), outcomeDead
		log.WarnContext(ctx, "task failed for good, dead-lettered", "err", err)
	} else {
		queue = w.topo.Delay(env.Attempt - 1)
		log.InfoContext(ctx, "task failed, retrying", "err", err, "retry_in", w.topo.Delays[env.Attempt-1])
	}
	pctx, cancel := context.WithTimeout(ctx, w.cfg.Timeout)
	perr := pub.Publish(pctx, queue, next)
	cancel()
	if perr != nil {
		return w.requeue(ctx, log, env.Task.Kind, perr)
	}
	w.m.outcome(string(env.Task.Kind), outcome)
	return settleAck
}

// claim waits until no other delivery of id is in progress in this worker
// and marks id in progress, so a duplicate delivery waits and then finds
// the first one's completion record.
func (w *Worker) claim(ctx context.Context, id string) (release func()) {
	for {
		w.mu.Lock()
		busy, ok := w.inflight[id]
		if !ok {
			ch := make(chan struct{})
			w.inflight[id] = ch
			w.mu.Unlock()
			return func() {
				w.mu.Lock()
				delete(w.inflight, id)
				w.mu.Unlock()
				close(ch)
			}
		}
		w.mu.Unlock()
		select {
		case <-busy:
		case <-ctx.Done():
			return func() {}
		}
	}
}

// permanentError marks a failure no retry can fix.
type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

func permanent(err error) error { return &permanentError{err: err} }

// perform does t once, within Timeout. A panic (in a Notifier, say) is a
// permanent failure: the task goes to the DLQ instead of taking the worker
// down or looping.
func (w *Worker) perform(ctx context.Context, t tasks.Task) (err error) {
	ctx, cancel := context.WithTimeout(ctx, w.cfg.Timeout)
	defer cancel()
	// ctx carries the task's trace (handle); the HTTP client's transport
	// sends it on as traceparent.
	ctx, span := tracer().Start(ctx, "worker "+string(t.Kind),
		trace.WithSpanKind(trace.SpanKindConsumer), trace.WithAttributes(attribute.String("rtstack.task_id", t.ID)))
	defer func() { telemetry.EndSpans([]trace.Span{span}, err) }()
	defer func() {
		if p := recover(); p != nil {
			err = permanent(fmt.Errorf("panic performing task: %v", p))
		}
	}()
	switch t.Kind {
	case tasks.KindWebhook:
		return w.webhook(ctx, t)
	case tasks.KindNotify:
		return w.notify(ctx, t)
	}
	return permanent(fmt.Errorf("unknown task kind %q", t.Kind))
}

func (w *Worker) webhook(ctx context.Context, t tasks.Task) error {
	if err := egress.ValidateURL(t.URL, w.cfg.AllowPrivate); err != nil {
		return permanent(err)
	}
	if w.cfg.Keyring == nil {
		return permanent(errors.New("no keyring to open the webhook secret (WEBHOOK_SECRET_KEY)"))
	}
	secret, err := w.cfg.Keyring.Open(t.SealedSecret, t.WebhookID)
	if err != nil {
		return permanent(fmt.Errorf("webhook secret: %w", err))
	}
	err = w.post(ctx, w.hooks, t.URL, t.ID, t.Body, tasks.Sign(secret, t.Body))
	if errors.Is(err, egress.ErrPrivateTarget) {
		return permanent(err)
	}
	return err
}

func (w *Worker) notify(ctx context.Context, t tasks.Task) error {
	if w.cfg.Notifier != nil {
		online, err := w.cfg.Notifier.UserOnline(ctx, t.User)
		if err != nil {
			return fmt.Errorf("presence of %s: %w", t.User, err)
		}
		if online {
			if err := w.cfg.Notifier.Notify(ctx, t.User, t.Body); err != nil {
				return fmt.Errorf("notify %s: %w", t.User, err)
			}
			return nil
		}
	}
	if w.cfg.NotifyURL == "" {
		return nil // offline and no push endpoint: nothing to do
	}
	var n tasks.Notification
	if err := json.Unmarshal(t.Body, &n); err != nil {
		return permanent(fmt.Errorf("notification body: %w", err))
	}
	n.User = t.User
	body, err := json.Marshal(n)
	if err != nil {
		return permanent(err)
	}
	err = w.post(ctx, w.hooks, w.cfg.NotifyURL, t.ID, body, "")
	if errors.Is(err, egress.ErrPrivateTarget) {
		return permanent(err)
	}
	return err
}

// post POSTs body and wants a 2xx.
func (w *Worker) post(ctx context.Context, c *http.Client, url, id string, body []byte, sig string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return permanent(fmt.Errorf("request to %s: %w", url, err))
	}
	// Set in one map of the right size; the keys are canonical already.
	req.Header = http.Header{
		"Content-Type":        {"application/json"},
		"User-Agent":          {"rtstack-webhook/1"},
		tasks.HeaderDelivery:  {id},
		tasks.HeaderSignature: {sig},
	}
	if sig == "" {
		delete(req.Header, tasks.HeaderSignature)
	}
	resp, err := c.Do(req)
	if err != nil {
		return fmt.Errorf("post: %w", err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		err := fmt.Errorf("post: %s answered %s", req.URL.Redacted(), resp.Status)
		if refused(resp.StatusCode) {
			return permanent(fmt.Errorf("%w: a 4xx other than 408 and 429 is not retried", err))
		}
		return err
	}
	return nil
}

// refused reports whether status says the target will never accept this
// delivery as sent (a wrong URL, a rejected signature): retrying cannot
// help. 408 and 429 ask to come back later, so they are retried like a 5xx.
func refused(status int) bool {
	return status >= 400 && status < 500 &&
		status != http.StatusRequestTimeout && status != http.StatusTooManyRequests
}
