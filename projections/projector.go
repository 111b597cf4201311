package projections

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/rtstack/rtstack/infra/kafka"
	"github.com/rtstack/rtstack/schemas"
)

// Projector defaults: what a zero Config field means.
const (
	DefaultGroupPrefix    = "rtstack-projector-" // + Store.Name()
	DefaultParkSuffix     = ".parked"            // Topic + this
	DefaultMaxBatch       = 5000
	DefaultSessionTimeout = 45 * time.Second // kgo's default
	DefaultLagInterval    = 5 * time.Second
)

// Config configures a Projector. The zero value of each optional field is
// the default stated in its comment; NewProjector fills the defaults in,
// then validates the effective values.
type Config struct {
	// Kafka reaches the log's cluster: seed brokers (required), TLS, SASL,
	// compression. A nil Kafka.Logger takes Logger.
	Kafka kafka.ClientConfig
	// Topic is the event log. Default kafka.DefaultTopic ("chat.events").
	Topic string
	// Group is the consumer group; instances with the same Group share the
	// partitions. Default DefaultGroupPrefix + Store.Name()
	// ("rtstack-projector-postgres").
	Group string
	// Codec decodes records. Required.
	Codec *schemas.Codec
	// Store is the projection fed by the log. Required.
	Store Store
	// ParkTopic receives undecodable records. Default Topic +
	// DefaultParkSuffix ("chat.events.parked"); created (1 partition,
	// unlimited retention) if missing.
	ParkTopic string
	// MaxBatch bounds the records of one Apply. Default DefaultMaxBatch
	// (5000). Batches are as large as what is buffered: thousands during a
	// replay, one or a few when live.
	MaxBatch int
	// SessionTimeout is the consumer group session timeout: how long a dead
	// instance keeps its partitions. Default DefaultSessionTimeout (45s).
	SessionTimeout time.Duration
	// LagInterval is how often lag and age gauges are refreshed, and how
	// long a partition stays idle before a LossDetector store is probed.
	// Default DefaultLagInterval (5s).
	LagInterval time.Duration
	// Logger receives the runtime's logs; nil discards them.
	Logger *slog.Logger
	// Registerer receives the runtime's metrics; nil registers nothing.
	Registerer prometheus.Registerer
}

// Validate reports every problem of cfg at once. NewProjector calls it on
// the effective values, after WithDefaults.
func (c Config) Validate() error {
	var errs []error
	if len(c.Kafka.Brokers) == 0 {
		errs = append(errs, errors.New("projector: no brokers"))
	} else if err := c.Kafka.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("projector: %w", err))
	}
	if c.Codec == nil {
		errs = append(errs, errors.New("projector: no codec"))
	}
	if c.Store == nil {
		errs = append(errs, errors.New("projector: no store"))
	}
	if c.MaxBatch < 0 {
		errs = append(errs, errors.New("projector: negative MaxBatch"))
	}
	if c.SessionTimeout < 0 || c.LagInterval < 0 {
		errs = append(errs, errors.New("projector: negative duration"))
	}
	return errors.Join(errs...)
}

// WithDefaults returns c with every zero optional field set to its default.
func (c Config) WithDefaults() Config {
	if c.Topic == "" {
		c.Topic = kafka.DefaultTopic
	}
	if c.Group == "" && c.Store != nil {
		c.Group = DefaultGroupPrefix + c.Store.Name()
	}
	if c.ParkTopic == "" {
		c.ParkTopic = c.Topic + DefaultParkSuffix
	}
	if c.MaxBatch == 0 {
		c.MaxBatch = DefaultMaxBatch
	}
	if c.SessionTimeout == 0 {
		c.SessionTimeout = DefaultSessionTimeout
	}
	if c.LagInterval == 0 {
		c.LagInterval = DefaultLagInterval
	}
	c.Logger = orDiscard(c.Logger)
	c.Kafka = c.Kafka.OrLogger(c.Logger)
	return c
}

// orDiscard is log, or a logger that discards everything when log is nil.
func orDiscard(log *slog.Logger) *slog.Logger {
	if log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return log
}

// Projector feeds a Store from the log as a member of a consumer group: one
// goroutine per assigned partition, each starting at the Store's checkpoint
// (the Store is the truth; group offsets are committed after the store
// committed, for lag tools only).
type Projector struct {
	cfg  Config
	name string
	m    *metrics
	log  *slog.Logger

	// meta (checks of the log: binding, end offsets) and place are set
	// once at the start of Run before the group client exists; client once
	// it does, and then clientSet is closed. Joining may assign partitions
	// (and call adjust) before NewClient returns, so kgo's callbacks wait
	// for clientSet before they touch client.
	meta      *kgo.Client
	client    *kgo.Client
	clientSet chan struct{}
	place     *kafka.Placement

	// fail ends Run with the cause a partition could not get past (an
	// error wrapping ErrPermanent); set once at the start of Run.
	fail context.CancelCauseFunc

	truncOnce sync.Once // a truncation is counted and logged once per Run
	// logInfo is the log the store was bound to at the start (nil if the
	// topic could not be described); the lag tick checks the binding again.
	logInfo atomic.Pointer[kafka.TopicInfo]

	mu       sync.Mutex            // guards assigned, seeks, wake and each assignment's fetchGen
	assigned map[int32]*assignment // assigned partitions
	seeks    map[int32]seekReq     // re-seeks asked by assignments, applied by the poll loop
	wake     context.CancelFunc    // ends the poll in progress (nil between polls)
}

// assignment owns one assigned partition's goroutine.
type assignment struct {
	part   *applier
	ch     chan fetched
	stop   chan struct{} // closed on revoke: finish the batch in hand, then exit
	cancel context.CancelFunc
	done   chan struct{}
	// fetchGen tags what the poll loop hands over: the generation of the
	// last re-seek it applied. The assignment drops batches of an older
	// generation (fetched before the seek).
	fetchGen uint64
}

// seekReq asks the poll loop to move a partition's fetch position.
type seekReq struct {
	w      *assignment
	gen    uint64
	offset int64
}

// NewProjector checks cfg and registers the metrics. Nothing connects until
// Run.
func NewProjector(cfg Config) (*Projector, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, fmt.Errorf("projector metrics: %w", err)
	}
	return &Projector{
		cfg:       cfg,
		name:      cfg.Store.Name(),
		m:         m,
		log:       cfg.Logger.With("projection", cfg.Store.Name()),
		assigned:  map[int32]*assignment{},
		clientSet: make(chan struct{}),
		seeks:     map[int32]seekReq{},
	}, nil
}

// Run consumes until ctx ends, then stops the partition goroutines, commits
// group offsets and leaves the group. It returns nil when ctx was canceled,
// or the error that stopped it: the client could not be created, the log
// was recreated (ErrLogChanged), the log lost its tail under the store's
// checkpoints (a *TruncatedError wrapping ErrLogTruncated: at the start,
// at an assignment, or when a fetch or the lag tick shows an end offset
// below a checkpoint), or a partition met an error retrying
// cannot fix (ErrPermanent; the message names the partition and offset).
// Run is called once.
func (p *Projector) Run(parent context.Context) error {
	ctx, fail := context.WithCancelCause(parent)
	defer fail(nil)
	p.fail = fail
	meta, err := kafka.NewClient(p.cfg.Kafka)
	if err != nil {
		return fmt.Errorf("projector %s: %w", p.name, err)
	}
	defer meta.Close()
	p.meta = meta
	// Before the group client exists: joining assigns partitions at once,
	// and their appliers need the log's placement rule.
	if ok, err := p.prepare(ctx); !ok {
		return err
	}
	cl, err := kafka.NewClient(p.cfg.Kafka, p.clientOpts(ctx)...)
	if err != nil {
		return fmt.Errorf("projector %s: %w", p.name, err)
	}
	defer p.revokeAll()
	defer cl.Close() // leaves the group; the revoke callback stops the assignments
	p.client = cl
	close(p.clientSet)

	lagDone := make(chan struct{})
	lagCtx, stopLag := context.WithCancel(ctx)
	go func() {
		defer close(lagDone)
		p.lagLoop(lagCtx, cl)
	}()
	defer func() { stopLag(); <-lagDone }()

	p.log.Info("projector started", "topic", p.cfg.Topic, "group", p.cfg.Group)
	p.poll(ctx, cl)
	p.revokeAll()
	commitCtx, cancelCommit := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancelCommit()
	if err := cl.CommitMarkedOffsets(commitCtx); err != nil {
		p.log.Debug("final commit of group offsets", "err", err)
	}
	if err := context.Cause(ctx); parent.Err() == nil && err != nil {
		p.log.Error("projector stopped", "err", err)
		return fmt.Errorf("projector %s: %w", p.name, err)
	}
	p.log.Info("projector stopped")
	return nil
}

// clientOpts are the consumer group member's options: its callbacks
// start, seek and stop the assignments.
func (p *Projector) clientOpts(ctx context.Context) []kgo.Opt {
	topic := p.cfg.Topic
	hb := min(3*time.Second, p.cfg.SessionTimeout/3)
	return []kgo.Opt{
		kgo.ConsumerGroup(p.cfg.Group),
		kgo.ConsumeTopics(topic),
		kgo.SessionTimeout(p.cfg.SessionTimeout),
		kgo.HeartbeatInterval(hb),
		kgo.AutoCommitMarks(),
		kgo.AutoCommitInterval(time.Second),
		kgo.FetchMaxWait(500 * time.Millisecond),
		// Fetches are decompressed in memory: bound what a replay buffers.
		kgo.FetchMaxPartitionBytes(512 << 10),
		kgo.FetchMaxBytes(8 << 20),
		kgo.OnPartitionsAssigned(func(_ context.Context, _ *kgo.Client, assigned map[string][]int32) {
			p.assign(ctx, assigned[topic])
		}),
		kgo.AdjustFetchOffsetsFn(func(actx context.Context, offsets map[string]map[int32]kgo.Offset) (map[string]map[int32]kgo.Offset, error) {
			return p.adjust(actx, offsets)
		}),
		kgo.OnPartitionsRevoked(func(rctx context.Context, c *kgo.Client, revoked map[string][]int32) {
			p.revoke(revoked[topic], false)
			if err := c.CommitMarkedOffsets(rctx); err != nil && rctx.Err() == nil {
				p.log.Debug("commit group offsets on revoke", "err", err)
			}
		}),
		kgo.OnPartitionsLost(func(_ context.Context, _ *kgo.Client, lost map[string][]int32) {
			p.revoke(lost[topic], true)
		}),
	}
}

// poll hands what the client fetches to the assignments until ctx ends,
// applying the re-seeks they ask for between polls.
func (p *Projector) poll(ctx context.Context, cl *kgo.Client) {
	for {
		if p.applySeeks(cl) {
			continue // another seek was asked meanwhile
		}
		pollCtx, wake := context.WithCancel(ctx)
		p.mu.Lock()
		p.wake = wake
		p.mu.Unlock()
		fs := cl.PollFetches(pollCtx)
		p.mu.Lock()
		p.wake = nil
		p.mu.Unlock()
		wake()
		if ctx.Err() != nil || fs.IsClientClosed() {
			return
		}
		fs.EachError(func(t string, part int32, err error) {
			if !errors.Is(err, context.Canceled) {
				p.log.Warn("fetch error", "topic", t, "partition", part, "err", err)
			}
		})
		fs.EachPartition(func(ftp kgo.FetchTopicPartition) { p.hand(ctx, ftp) })
	}
}

// hand passes one partition's fetch to its assignment, tagged with the
// generation of the last re-seek.
func (p *Projector) hand(ctx context.Context, ftp kgo.FetchTopicPartition) {
	if len(ftp.Records) == 0 || ftp.Topic != p.cfg.Topic {
		return
	}
	p.mu.Lock()
	w := p.assigned[ftp.Partition]
	var gen uint64
	if w != nil {
		gen = w.fetchGen
	}
	p.mu.Unlock()
	if w == nil {
		return // revoked meanwhile: the next owner starts at the checkpoint
	}
	// A fetch past the end is answered from another position (the client
	// resets an out-of-range offset): its high watermark tells.
	if next := w.part.next.Load(); ftp.Err == nil && ftp.HighWatermark < next {
		_ = p.truncated(map[int32]int64{ftp.Partition: next}, map[int32]int64{ftp.Partition: ftp.HighWatermark})
		return
	}
	select {
	case w.ch <- fetched{gen: gen, recs: ftp.Records}:
	case <-w.stop:
	case <-ctx.Done():
	}
}

// prepare ensures the parking topic and checks the log (checkLog) with
// the meta client; ok is false when Run must return err.
func (p *Projector) prepare(ctx context.Context) (ok bool, err error) {
	meta := p.meta
	ensureCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	if _, err := kafka.EnsureTopic(ensureCtx, meta, p.cfg.ParkTopic, 1); err != nil {
		p.log.Warn("parking topic not ensured; parking will retry", "topic", p.cfg.ParkTopic, "err", err)
	}
	cancel()
	return p.checkLog(ctx, meta)
}

// checkLog describes the log, waiting until it exists, so the appliers
// check the placement rule over its partition count; it refuses to
// project a recreated log onto checkpoints of the old one (its offsets mean
// other records), or a log onto a store bound to another cluster's log
// (ErrOtherLog); then it checks for a truncation. ok is false when ctx
// ended first.
func (p *Projector) checkLog(ctx context.Context, cl *kgo.Client) (ok bool, err error) {
	backoff := newBackoff()
	var info kafka.TopicInfo
	for {
		dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		info, err = kafka.DescribeTopic(dctx, cl, p.cfg.Topic)
		cancel()
		if err == nil {
			break
		}
		p.log.Warn("log not described, retrying", "topic", p.cfg.Topic, "attempt", backoff.Attempt()+1, "err", err)
		if !backoff.Wait(ctx, nil) {
			return false, nil // shutting down
		}
	}
	p.place = kafka.NewPlacement(p.cfg.Codec, info)
	for {
		err := bindLog(ctx, p.cfg.Store, info)
		if boundElsewhere(err) {
			return false, fmt.Errorf("projector %s: %w", p.name, err)
		}
		if err == nil {
			p.logInfo.Store(&info)
			if err := p.checkTruncated(ctx, cl, nil); err != nil {
				return false, err
			}
			return true, nil
		}
		p.log.Warn("bind log failed, retrying", "attempt", backoff.Attempt()+1, "err", err)
		if !backoff.Wait(ctx, nil) {
			return false, nil // shutting down
		}
	}
}

// checkTruncated compares the store's checkpoints of parts (nil: every
// partition) with the log's end offsets and reports a truncation (see
// truncated). A checkpoint or end offset that cannot be read is not
// judged: the lag tick checks again.
func (p *Projector) checkTruncated(ctx context.Context, cl *kgo.Client, parts map[int32]kgo.Offset) error {
	cps, err := p.cfg.Store.Checkpoints(ctx)
	if err != nil {
		p.log.Warn("checkpoints not read; truncation not checked", "err", err)
		return nil
	}
	if parts != nil {
		maps.DeleteFunc(cps, func(id int32, _ int64) bool { _, ok := parts[id]; return !ok })
	}
	ends, err := kafka.EndOffsets(ctx, cl, p.cfg.Topic)
	if err != nil {
		p.log.Warn("end offsets not read; truncation not checked", "err", err)
		return nil
	}
	return p.truncated(cps, ends)
}

// truncated returns a *TruncatedError if a checkpoint in cps is beyond its
// partition's end in ends, after counting and logging it (once per Run)
// and ending Run with it; else nil.
func (p *Projector) truncated(cps, ends map[int32]int64) error {
	err := truncatedErr(p.name, cps, ends)
	if err == nil {
		return nil
	}
	p.truncOnce.Do(func() {
		p.m.truncated.WithLabelValues(p.name).Inc()
		p.log.Error("the log lost its tail: the projector stops rather than skip the offsets it reuses", "err", err)
	})
	p.fail(err)
	return err
}

// assign starts a goroutine per newly assigned partition.
func (p *Projector) assign(ctx context.Context, parts []int32) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, id := range parts {
		if _, ok := p.assigned[id]; ok {
			continue
		}
		wctx, cancel := context.WithCancel(ctx)
		w := &assignment{
			part:   p.newApplier(id),
			ch:     make(chan fetched, 2),
			stop:   make(chan struct{}),
			cancel: cancel,
			done:   make(chan struct{}),
		}
		p.assigned[id] = w
		go p.runAssignment(wctx, w)
	}
	if len(parts) > 0 {
		p.log.Info("partitions assigned", "partitions", parts)
	}
}

func (p *Projector) newApplier(id int32) *applier {
	return &applier{
		id:       id,
		name:     p.name,
		store:    p.cfg.Store,
		place:    p.place,
		maxBatch: p.cfg.MaxBatch,
		park:     p.park,
		log:      p.log,
		m:        p.m.forPartition(p.name, id),
	}
}

// adjust points each newly assigned partition at the Store's checkpoint,
// whatever the group committed.
func (p *Projector) adjust(ctx context.Context, offsets map[string]map[int32]kgo.Offset) (map[string]map[int32]kgo.Offset, error) {
	parts := offsets[p.cfg.Topic]
	if len(parts) == 0 {
		return offsets, nil
	}
	cps, err := checkpointsRetry(ctx, p.cfg.Store, p.log)
	if err != nil {
		return nil, err
	}
	if err := p.checkTruncated(ctx, p.meta, parts); err != nil {
		return nil, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	stale := map[int32]kgo.EpochOffset{}
	for id, committed := range parts {
		next := cps[id]
		if committed.EpochOffset().Offset != next {
			stale[id] = kgo.EpochOffset{Epoch: -1, Offset: next}
		}
		parts[id] = kgo.NewOffset().At(next).WithEpoch(-1)
		if w := p.assigned[id]; w != nil {
			w.part.next.Store(next)
		}
		p.log.Debug("partition starts at checkpoint", "partition", id, "offset", next)
	}
	p.commitCheckpoints(stale)
	return offsets, nil
}

// commitCheckpoints moves the group's committed offsets to the store's
// checkpoints where they differ (a crash between the store's commit and
// the group's, a promoted rebuild, a restored store), so the lag admin
// tools show is true even on a partition that stays idle: kgo commits a
// partition only once it consumed from it. The store remains the truth;
// the commit is asynchronous and its failure only logged.
func (p *Projector) commitCheckpoints(offsets map[int32]kgo.EpochOffset) {
	if len(offsets) == 0 {
		return
	}
	// Called while kgo assigns: it commits once the assignment is done.
	go func() {
		<-p.clientSet
		p.client.CommitOffsets(context.Background(), map[string]map[int32]kgo.EpochOffset{p.cfg.Topic: offsets}, func(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse, err error) {
			if err == nil {
				err = kafka.CommitError(resp)
			}
			if err != nil {
				p.log.Warn("group offsets not moved to the checkpoints; admin tools show stale lag until records arrive", "err", err)
			}
		})
	}()
}

// revoke stops the goroutines of parts and waits for them. A revoked
// partition finishes the batch in hand (bounded by a grace period); a lost
// one is canceled at once.
func (p *Projector) revoke(parts []int32, lost bool) {
	p.mu.Lock()
	var ws []*assignment
	for _, id := range parts {
		if w, ok := p.assigned[id]; ok {
			ws = append(ws, w)
			delete(p.assigned, id)
			p.m.forget(p.name, id)
		}
	}
	p.mu.Unlock()
	for _, w := range ws {
		close(w.stop)
		if lost {
			w.cancel()
		}
	}
	for _, w := range ws {
		select {
		case <-w.done:
		case <-time.After(10 * time.Second):
			w.cancel()
			<-w.done
		}
		w.cancel()
	}
	if len(ws) > 0 {
		p.log.Info("partitions released", "partitions", parts, "lost", lost)
	}
}

func (p *Projector) revokeAll() {
	p.mu.Lock()
	var parts []int32
	for id := range p.assigned {
		parts = append(parts, id)
	}
	p.mu.Unlock()
	p.revoke(parts, false)
}

// runAssignment applies what the poll loop hands over, merging what
// queued up into one batch (gather). When the store lost its state it
// reloads the checkpoint and re-seeks (see reseek); when a batch fails for
// good it ends Run with the cause.
func (p *Projector) runAssignment(ctx context.Context, w *assignment) {
	defer close(w.done)
	var buf []*kgo.Record
	var gen uint64 // batches of an older generation were fetched before a re-seek
	var idle <-chan time.Time
	if detectsLoss(p.cfg.Store) {
		t := time.NewTicker(p.cfg.LagInterval)
		defer t.Stop()
		idle = t.C
	}
	busy := false // applied something since the last idle tick
	for {
		var err error
		select {
		case <-ctx.Done():
			return
		case <-w.stop:
			return
		case <-idle:
			if busy {
				busy = false
				continue
			}
			err = w.part.probe(ctx)
		case f := <-w.ch:
			if f.gen != gen {
				continue
			}
			buf = gather(buf, f.recs, w.ch, gen, p.cfg.MaxBatch)
			busy = true
			var last *kgo.Record
			last, err = w.part.process(ctx, buf, w.stop)
			if last != nil {
				p.client.MarkCommitRecords(last)
			}
			clear(buf)
		}
		switch {
		case err == nil:
		case errors.Is(err, ErrStoreReset):
			gen++
			if !p.reseek(ctx, w, gen, err) {
				return
			}
		case errors.Is(err, ErrPermanent):
			p.fail(err)
			return
		default:
			return
		}
	}
}

// reseek restarts w's partition from the store's checkpoint after the
// store lost its state: reload Checkpoints, set the partition's position,
// and ask the poll loop to seek there. Batches already fetched carry an
// older generation and are dropped by the assignment. False if the partition
// stopped meanwhile.
func (p *Projector) reseek(ctx context.Context, w *assignment, gen uint64, cause error) bool {
	id := w.part.id
	cps, err := checkpointsRetry(ctx, p.cfg.Store, p.log)
	if err != nil {
		return false
	}
	next := cps[id]
	w.part.next.Store(next)
	p.log.Warn("store lost its state; partition restarts from the store's checkpoint",
		"partition", id, "offset", next, "err", cause)
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.assigned[id] != w {
		return false // revoked: the next owner starts at the checkpoint
	}
	p.seeks[id] = seekReq{w: w, gen: gen, offset: next}
	if p.wake != nil {
		p.wake()
	}
	return true
}

// applySeeks runs in the poll loop, between polls (SetOffsets discards
// what the client buffered for those partitions, so every later poll
// returns records from the new position, tagged with the new generation).
// It reports whether another seek is pending after that.
func (p *Projector) applySeeks(cl *kgo.Client) bool {
	p.mu.Lock()
	if len(p.seeks) == 0 {
		p.mu.Unlock()
		return false
	}
	set := map[int32]kgo.EpochOffset{}
	for id, req := range p.seeks {
		delete(p.seeks, id)
		if p.assigned[id] != req.w {
			continue
		}
		req.w.fetchGen = req.gen
		set[id] = kgo.EpochOffset{Epoch: -1, Offset: req.offset}
	}
	p.mu.Unlock()
	if len(set) > 0 {
		cl.SetOffsets(map[string]map[int32]kgo.EpochOffset{p.cfg.Topic: set})
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.seeks) > 0
}

func (p *Projector) park(ctx context.Context, r *kgo.Record, cause error) error {
	res := p.client.ProduceSync(ctx, parkedRecord(p.cfg.ParkTopic, p.name, r, cause))
	if err := res.FirstErr(); err != nil {
		return fmt.Errorf("park %s/%d@%d: %w", r.Topic, r.Partition, r.Offset, err)
	}
	return nil
}

// stillBound checks that the store's active version is still bound to the
// log read (a rebuild elsewhere may have promoted a version of another
// log: see RebuildConfig.AdoptLog); if not it ends Run with the error.
// Other errors are left to the next tick.
func (p *Projector) stillBound(ctx context.Context) error {
	info := p.logInfo.Load()
	if info == nil {
		return nil
	}
	err := bindLog(ctx, p.cfg.Store, *info)
	if !boundElsewhere(err) {
		return nil
	}
	p.log.Error("the store's active version is no longer bound to the log this projector reads; it stops", "err", err)
	p.fail(err)
	return err
}

// lagLoop refreshes the lag and age gauges of the owned partitions and
// checks the store's binding to the log.
func (p *Projector) lagLoop(ctx context.Context, cl *kgo.Client) {
	t := time.NewTicker(p.cfg.LagInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if p.stillBound(ctx) != nil {
			return
		}
		ends, err := kafka.EndOffsets(ctx, cl, p.cfg.Topic)
		if err != nil {
			continue
		}
		now := time.Now()
		nexts := map[int32]int64{}
		p.mu.Lock()
		for id, w := range p.assigned {
			next := w.part.next.Load()
			nexts[id] = next
			end, ok := ends[id]
			if !ok {
				continue
			}
			lag := max(0, end-next)
			p.m.setLag(p.name, id, lag)
			// Caught up, nothing is late: an idle partition's last event
			// only gets older, and an age that grew would page someone.
			switch ts := w.part.lastTS.Load(); {
			case lag == 0:
				w.part.m.age.Set(0)
			case ts > 0:
				w.part.m.age.Set(ageSeconds(ts, now))
			}
		}
		p.mu.Unlock()
		if p.truncated(nexts, ends) != nil {
			return
		}
	}
}
