package reactor

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel/trace"

	"github.com/rtstack/rtstack/events"
	"github.com/rtstack/rtstack/infra/kafka"
	"github.com/rtstack/rtstack/infra/telemetry"
	"github.com/rtstack/rtstack/internal/keyring"
	"github.com/rtstack/rtstack/internal/retry"
	"github.com/rtstack/rtstack/schemas"
	"github.com/rtstack/rtstack/tasks"
	"github.com/rtstack/rtstack/tasks/rabbit"
)

// DefaultGroup is the reactor's consumer group.
const DefaultGroup = "rtstack-reactor"

// DefaultMaxBatch bounds the records handled (and tasks confirmed) per
// commit.
const DefaultMaxBatch = 1000

// Config of a Reactor.
type Config struct {
	// Kafka reaches the log's cluster: seed brokers (required), TLS, SASL,
	// compression. A nil Kafka.Logger takes Logger.
	Kafka kafka.ClientConfig
	// Topic is the log; empty means kafka.DefaultTopic.
	Topic string
	// Group is the reactor's own consumer group; empty means DefaultGroup.
	// Projection rebuilds use other groups and never move this one.
	Group string
	// Codec decodes the log; required.
	Codec *schemas.Codec
	// RabbitURL of RabbitMQ; empty means rabbit.DefaultURL.
	RabbitURL string
	// Prefix of the queue names; empty means rabbit.DefaultPrefix.
	Prefix string
	// RetryDelays name the delay queues declared at start; nil means
	// tasks.DefaultRetryDelays. Must match the workers'.
	RetryDelays []time.Duration
	// MaxBatch bounds the records per commit; 0 means DefaultMaxBatch.
	MaxBatch int
	// ResumeTruncated: when the log lost its tail under the group's
	// committed offsets, move them back to the log's end and carry on (the
	// lost records' tasks were published already; the records appended
	// next are emitted). False: Run returns an error wrapping
	// ErrLogTruncated naming the partitions and offsets.
	ResumeTruncated bool
	// Logger receives the logs; nil discards them (the binary injects its own).
	Logger *slog.Logger
	// Registerer for the metrics; nil means they are not registered.
	Registerer prometheus.Registerer
	// Keyring seals the secrets of registrations written before secrets
	// were sealed, so no task carries one in the clear; nil leaves such
	// webhooks' tasks without a secret, and the worker dead-letters them
	// with that reason.
	Keyring *keyring.Keyring
}

// Validate joins every problem of c once its defaults are applied.
func (c Config) Validate() error {
	c = c.withDefaults()
	var errs []error
	if len(c.Kafka.Brokers) == 0 {
		errs = append(errs, errors.New("reactor: no Kafka brokers"))
	} else if err := c.Kafka.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("reactor: %w", err))
	}
	if c.Codec == nil {
		errs = append(errs, errors.New("reactor: no codec"))
	}
	if c.MaxBatch < 0 {
		errs = append(errs, fmt.Errorf("reactor: negative MaxBatch %d", c.MaxBatch))
	}
	errs = append(errs, c.rabbit().Validate())
	return errors.Join(errs...)
}

// withDefaults returns c with every zero field set to its default.
func (c Config) withDefaults() Config {
	c.Topic = cmp.Or(c.Topic, kafka.DefaultTopic)
	c.Group = cmp.Or(c.Group, DefaultGroup)
	c.MaxBatch = cmp.Or(c.MaxBatch, DefaultMaxBatch)
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	c.Kafka = c.Kafka.OrLogger(c.Logger)
	return c
}

func (c Config) rabbit() rabbit.Config {
	return rabbit.Config{URL: c.RabbitURL, Prefix: c.Prefix, RetryDelays: c.RetryDelays}
}

// Reactor publishes the tasks of the log. Run it once.
type Reactor struct {
	cfg Config
	log *slog.Logger
	m   *metrics

	mu    sync.Mutex // guards parts: written by the rebalance callbacks, read by the poll loop
	parts map[int32]*partitionState

	pub   *rabbit.Publisher // owned by the poll loop
	place *kafka.Placement  // set by Run before the first poll

	// meta reads committed and end offsets for the checks; set at the
	// start of Run, before the group client exists (its callbacks use it).
	meta *kgo.Client
	fail context.CancelCauseFunc // ends Run with a cause; set at the start of Run
}

// partitionState is what the reactor knows of one assigned partition.
type partitionState struct {
	// committed is the group's offset when the partition was assigned:
	// records below it had their tasks published by an earlier run, so
	// they are only folded.
	committed int64
	// hooks are the room's webhooks in registration order.
	hooks map[string][]tasks.Webhook
	// members are the room's members as of the record being handled
	// (MemberJoined minus MemberLeft): only they are notified of a mention.
	members map[string]map[string]struct{}
}

func newPartitionState(committed int64) *partitionState {
	return &partitionState{committed: committed, hooks: map[string][]tasks.Webhook{}, members: map[string]map[string]struct{}{}}
}

// New checks cfg and builds a Reactor; it connects nothing until Run.
func New(cfg Config) (*Reactor, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, err
	}
	return &Reactor{cfg: cfg, log: cfg.Logger.With("component", "reactor"), m: m, parts: map[int32]*partitionState{}}, nil
}

// Run tails the log until ctx ends and returns nil then; it returns an
// error if the Kafka client cannot be built, or one wrapping
// ErrLogTruncated (see Config.ResumeTruncated). RabbitMQ outages are
// waited out.
func (r *Reactor) Run(parent context.Context) error {
	ctx, fail := context.WithCancelCause(parent)
	defer fail(nil)
	r.fail = fail
	meta, err := kafka.NewClient(r.cfg.Kafka)
	if err != nil {
		return fmt.Errorf("reactor: %w", err)
	}
	defer meta.Close()
	r.meta = meta
	if err := r.checkTruncated(ctx, meta); err != nil {
		return err
	}
	cl, err := kafka.NewClient(r.cfg.Kafka,
		kgo.ConsumerGroup(r.cfg.Group),
		kgo.ConsumeTopics(r.cfg.Topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.DisableAutoCommit(),
		kgo.BlockRebalanceOnPoll(),
		kgo.AdjustFetchOffsetsFn(r.assigned),
		kgo.OnPartitionsRevoked(r.dropped),
		kgo.OnPartitionsLost(r.dropped),
	)
	if err != nil {
		return fmt.Errorf("reactor: %w", err)
	}
	defer func() {
		if r.pub != nil {
			_ = r.pub.Close()
		}
	}()
	defer cl.Close()
	if !r.describe(ctx, cl) {
		return nil
	}
	for {
		fs := cl.PollRecords(ctx, r.cfg.MaxBatch)
		if ctx.Err() == nil {
			if err := r.fetchedPastEnd(fs); err != nil {
				fail(err)
			}
		}
		if ctx.Err() != nil {
			cl.AllowRebalance()
			if parent.Err() == nil {
				return context.Cause(ctx)
			}
			return nil
		}
		fs.EachError(func(topic string, p int32, err error) {
			r.log.Warn("fetch", "topic", topic, "partition", p, "err", err)
		})
		err := r.handle(ctx, cl, fs.Records())
		if err == nil {
			r.noteLag(fs)
		}
		cl.AllowRebalance()
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			r.log.Warn("commit", "err", err)
		}
	}
}

// CheckTruncated compares the group's committed offsets with the log's end
// before the group is joined, with a client of its own; with ResumeTruncated it moves them back to
// the end of a log that lost its tail, otherwise it returns an error
// wrapping ErrLogTruncated. Run calls it first; call it earlier, before
// anything appends to the log (rtstack dev does, before its gateway
// serves), so that no new record lands between the truncation and the
// check: one there would be taken for a lost one and not emitted.
func (r *Reactor) CheckTruncated(ctx context.Context) error {
	cl, err := kafka.NewClient(r.cfg.Kafka)
	if err != nil {
		return fmt.Errorf("reactor: %w", err)
	}
	defer cl.Close()
	return r.checkTruncated(ctx, cl)
}

// assigned runs when partitions are assigned: it notes the committed
// offsets (moved back to the log's end where the log lost its tail, with
// ResumeTruncated; otherwise such a partition ends Run) and restarts each
// partition at zero to fold its registrations.
func (r *Reactor) assigned(ctx context.Context, offsets map[string]map[int32]kgo.Offset) (map[string]map[int32]kgo.Offset, error) {
	ends, err := kafka.EndOffsets(ctx, r.meta, r.cfg.Topic)
	if err != nil {
		r.log.Warn("end offsets not read; truncation not checked at assignment", "err", err)
	}
	positions := map[int32]int64{}
	for p, o := range offsets[r.cfg.Topic] {
		positions[p] = o.EpochOffset().Offset
	}
	if ts := r.truncations(positions, ends); len(ts) > 0 && !r.cfg.ResumeTruncated {
		err := truncatedErr(ts)
		r.fail(err)
		return nil, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, parts := range offsets {
		for p, o := range parts {
			c := max(o.EpochOffset().Offset, 0) // no commit yet: emit from the start
			if end, ok := ends[p]; ok && c > end {
				c = end // ResumeTruncated: the records from the end on are new
			}
			r.parts[p] = newPartitionState(c)
			parts[p] = kgo.NewOffset().AtStart()
			r.log.Info("partition assigned", "partition", p, "committed", c)
		}
	}
	return offsets, nil
}

func (r *Reactor) dropped(_ context.Context, _ *kgo.Client, lost map[string][]int32) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, ps := range lost {
		for _, p := range ps {
			delete(r.parts, p)
			r.m.forget(p)
		}
	}
}

// noteLag sets the lag of every partition fs has records of.
func (r *Reactor) noteLag(fs kgo.Fetches) {
	fs.EachPartition(func(p kgo.FetchTopicPartition) {
		if n := len(p.Records); n > 0 {
			r.m.setLag(p.Partition, p.HighWatermark, p.Records[n-1].Offset, r.partition(p.Partition).committed)
		}
	})
}

func (r *Reactor) partition(p int32) *partitionState {
	r.mu.Lock()
	defer r.mu.Unlock()
	st := r.parts[p]
	if st == nil { // not seen through assigned: consuming starts at the commit
		st = newPartitionState(0)
		r.parts[p] = st
	}
	return st
}

// refused counts and logs a record the reactor neither folds nor emits for:
// it does not decode, or it is misplaced (a registration or message outside
// its room's partition is not part of the room's history, which the
// partition's state folds). The projectors park it. Below the commit it was
// counted when it was first read.
func (r *Reactor) refused(rec *kgo.Record, err error, emit bool) {
	if !emit {
		return
	}
	if errors.Is(err, kafka.ErrMisplaced) {
		r.m.misplaced.Inc()
		r.log.Error("misplaced record skipped", "partition", rec.Partition, "offset", rec.Offset, "err", err)
		return
	}
	r.m.decodeErrors.Inc()
	r.log.Error("undecodable record skipped", "partition", rec.Partition, "offset", rec.Offset, "err", err)
}

// describe learns the log's partition count for the placement rule,
// waiting until the log exists; false when ctx ended first.
func (r *Reactor) describe(ctx context.Context, cl *kgo.Client) bool {
	backoff := retry.Backoff{Min: 100 * time.Millisecond, Max: 5 * time.Second, Jitter: true}
	for {
		dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		place, err := kafka.DescribePlacement(dctx, cl, r.cfg.Codec, r.cfg.Topic)
		cancel()
		if err == nil {
			r.place = place
			return true
		}
		r.log.Warn("log not described, retrying", "topic", r.cfg.Topic, "attempt", backoff.Attempt()+1, "err", err)
		if !backoff.Wait(ctx, nil) {
			return false
		}
	}
}

// handle folds recs, publishes their tasks until RabbitMQ confirms them all,
// then commits the offsets of the records at or past the old commit.
func (r *Reactor) handle(ctx context.Context, cl *kgo.Client, recs []*kgo.Record) error {
	var batch []tasks.Task
	var spans []trace.Span // one per message with tasks, ended once they are published
	commits := map[int32]kgo.EpochOffset{}
	for _, rec := range recs {
		st := r.partition(rec.Partition)
		emit := rec.Offset >= st.committed
		if emit {
			commits[rec.Partition] = kgo.EpochOffset{Epoch: rec.LeaderEpoch, Offset: rec.Offset + 1}
			r.m.records.WithLabelValues("emit").Inc()
		} else {
			r.m.records.WithLabelValues("fold").Inc()
		}
		if typ := kafka.EventType(rec); typ != "" && !folded[typ] && (!emit || typ != events.TypeMessageSent) {
			continue // nothing to fold or emit: skip the decode
		}
		er, err := r.place.Decode(rec)
		if err != nil {
			r.refused(rec, err, emit)
			continue
		}
		switch ev := er.Event.(type) {
		case *events.WebhookRegistered:
			st.register(r.sealed(ev))
		case *events.WebhookRemoved:
			st.remove(ev)
		case *events.MemberJoined:
			st.join(ev.Room, ev.User)
		case *events.MemberLeft:
			st.leave(ev.Room, ev.User)
		case *events.MessageSent:
			if !emit {
				continue
			}
			ts, err := tasks.ForMessage(r.onlyMembers(st, ev), er.Position, st.hooks[ev.Room])
			if err != nil {
				r.log.ErrorContext(kafka.TraceContext(ctx, rec), "tasks of message", "partition", rec.Partition, "offset", rec.Offset, "err", err)
				continue
			}
			if len(ts) > 0 {
				spans = append(spans, traceTasks(ctx, rec, ts))
			}
			batch = append(batch, ts...)
		}
	}
	if len(commits) == 0 {
		return nil
	}
	err := r.publish(ctx, batch)
	telemetry.EndSpans(spans, err)
	if err != nil {
		return err
	}
	var cerr error
	cl.CommitOffsetsSync(ctx, map[string]map[int32]kgo.EpochOffset{r.cfg.Topic: commits},
		func(_ *kgo.Client, _ *kmsgReq, resp *kmsgResp, err error) {
			if err != nil {
				cerr = err
				return
			}
			cerr = kafka.CommitError(resp)
		})
	if cerr != nil {
		return fmt.Errorf("commit reactor offsets: %w", cerr)
	}
	return nil
}

// folded are the event types whose state the reactor keeps, read also
// below the commit.
var folded = map[events.Type]bool{
	events.TypeWebhookRegistered: true,
	events.TypeWebhookRemoved:    true,
	events.TypeMemberJoined:      true,
	events.TypeMemberLeft:        true,
}

func (st *partitionState) join(room, user string) {
	if st.members[room] == nil {
		st.members[room] = map[string]struct{}{}
	}
	st.members[room][user] = struct{}{}
}

func (st *partitionState) leave(room, user string) {
	delete(st.members[room], user)
	if len(st.members[room]) == 0 {
		delete(st.members, room)
	}
}

// onlyMembers returns ev with its mentions cut to the room's members: a
// mention of anyone else notifies nobody (counted, not silent). ev itself
// is not changed.
func (r *Reactor) onlyMembers(st *partitionState, ev *events.MessageSent) *events.MessageSent {
	members := st.members[ev.Room]
	kept := make([]string, 0, len(ev.Mentions))
	for _, u := range ev.Mentions {
		if _, ok := members[u]; ok {
			kept = append(kept, u)
		} else {
			r.m.mentionsSkipped.Inc()
		}
	}
	if len(kept) == len(ev.Mentions) {
		return ev
	}
	cut := *ev
	cut.Mentions = kept
	return &cut
}

func (st *partitionState) register(ev *events.WebhookRegistered) {
	hs := st.hooks[ev.Room]
	for i, h := range hs {
		if h.ID == ev.WebhookID { // registered again: the newer settings win
			hs[i] = tasks.WebhookFrom(ev)
			return
		}
	}
	st.hooks[ev.Room] = append(hs, tasks.WebhookFrom(ev))
}

// remove forgets a webhook: messages after the removal get no task for it.
func (st *partitionState) remove(ev *events.WebhookRemoved) {
	st.hooks[ev.Room] = slices.DeleteFunc(st.hooks[ev.Room], func(h tasks.Webhook) bool { return h.ID == ev.WebhookID })
}

// sealed returns ev with its secret sealed: a registration from before
// sealing holds the plaintext, which must not be copied into tasks.
func (r *Reactor) sealed(ev *events.WebhookRegistered) *events.WebhookRegistered {
	if keyring.IsSealed(ev.Secret) || ev.Secret == "" {
		return ev
	}
	c := *ev
	c.Secret = ""
	if r.cfg.Keyring != nil {
		c.Secret = r.cfg.Keyring.Seal(ev.Secret, ev.WebhookID)
	} else {
		r.log.Error("webhook secret in the clear and no keyring to seal it: its deliveries will be dead-lettered", "room", ev.Room, "webhook_id", ev.WebhookID)
	}
	return &c
}

// publish publishes batch and waits for every confirm, reconnecting to
// RabbitMQ with backoff until it succeeds or ctx ends.
func (r *Reactor) publish(ctx context.Context, batch []tasks.Task) error {
	if len(batch) == 0 {
		return nil
	}
	backoff := retry.Backoff{Min: 100 * time.Millisecond, Max: 5 * time.Second, Jitter: true}
	for {
		err := r.tryPublish(ctx, batch)
		if err == nil {
			for _, t := range batch {
				r.m.published.WithLabelValues(string(t.Kind)).Inc()
			}
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		r.m.publishFailures.Inc()
		delay := backoff.Next()
		r.log.Warn("publish tasks failed; holding the log and retrying", "tasks", len(batch), "err", err,
			"attempt", backoff.Attempt(), "retry_in", delay)
		if r.pub != nil {
			_ = r.pub.Close()
			r.pub = nil
		}
		if !retry.Sleep(ctx, nil, delay) {
			return ctx.Err()
		}
	}
}

func (r *Reactor) tryPublish(ctx context.Context, batch []tasks.Task) error {
	if r.pub == nil {
		dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		p, err := rabbit.NewPublisher(dctx, r.cfg.rabbit())
		cancel()
		if err != nil {
			return err
		}
		r.pub = p
	}
	// A connection that hangs instead of failing must not hold the log
	// forever: a batch gets a bounded time to be confirmed.
	pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	return r.pub.PublishTasks(pctx, batch...)
}
