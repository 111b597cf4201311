package projections

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/rtstack/rtstack/infra/kafka"
	"github.com/rtstack/rtstack/schemas"
)

// DefaultRebuildMaxBatch is RebuildConfig.MaxBatch's default.
const DefaultRebuildMaxBatch = 20_000

// Rebuild timings.
const (
	rebuildTick      = 50 * time.Millisecond  // how often catch-up is checked
	rebuildReport    = 100 * time.Millisecond // how often Progress is called
	rebuildAbandonIn = 30 * time.Second       // bound on dropping a failed version
)

// RebuildConfig configures Rebuild. The zero value of each optional field
// is the default stated in its comment; Rebuild fills the defaults in, then
// validates the effective values.
type RebuildConfig struct {
	// Kafka reaches the log's cluster: seed brokers (required), TLS, SASL,
	// compression. A nil Kafka.Logger takes Logger.
	Kafka kafka.ClientConfig
	// Topic is the event log. Default kafka.DefaultTopic ("chat.events").
	Topic string
	// Codec decodes records. Required.
	Codec *schemas.Codec
	// Target is the projection to rebuild. Required.
	Target Versioned
	// Progress, if set, is called about ten times a second (and once at the
	// end) with the records replayed so far and the records to replay
	// (total grows when the live tail moves during catch-up).
	Progress func(done, total int64)
	// MaxBatch bounds the records of one Apply. Default
	// DefaultRebuildMaxBatch (20000): a replay has whole fetches waiting,
	// and a store folds a bigger batch into fewer writes per key.
	MaxBatch int
	// AdoptLog lets the rebuild replace a projection bound to another
	// cluster's log (ErrOtherLog: another deployment's store) with this
	// log's. Without it such a rebuild fails before it begins, naming both
	// logs. A projection of an earlier log of this cluster (ErrLogChanged:
	// the topic was recreated) is rebuilt either way.
	AdoptLog bool
	// Logger receives progress and errors; nil discards them.
	Logger *slog.Logger
	// Registerer receives the progress gauges (rtstack_rebuild_*); nil:
	// none.
	Registerer prometheus.Registerer
}

// WithDefaults returns c with every zero optional field set to its default.
func (c RebuildConfig) WithDefaults() RebuildConfig {
	if c.Topic == "" {
		c.Topic = kafka.DefaultTopic
	}
	if c.MaxBatch == 0 {
		c.MaxBatch = DefaultRebuildMaxBatch
	}
	c.Logger = orDiscard(c.Logger)
	c.Kafka = c.Kafka.OrLogger(c.Logger)
	return c
}

// Validate reports every problem of cfg at once.
func (c RebuildConfig) Validate() error {
	var errs []error
	if len(c.Kafka.Brokers) == 0 {
		errs = append(errs, errors.New("rebuild: no brokers"))
	} else if err := c.Kafka.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("rebuild: %w", err))
	}
	if c.Codec == nil {
		errs = append(errs, errors.New("rebuild: no codec"))
	}
	if c.Target == nil {
		errs = append(errs, errors.New("rebuild: no target"))
	}
	if c.MaxBatch < 0 {
		errs = append(errs, errors.New("rebuild: negative MaxBatch"))
	}
	return errors.Join(errs...)
}

// Rebuild replays the whole log into a new version of cfg.Target and makes
// it active (blue/green): Begin a version, consume every partition from its
// start with no consumer group, apply in big batches, and once caught up
// with the end offsets call Promote; while Promote answers "behind" (the
// live projector moved on), catch up again and retry. Reads and the live
// projector keep using the active version the whole time. On any error the
// new version is abandoned. Undecodable records are counted, logged and
// skipped (the live projector parked them already); an Apply error
// retrying cannot fix fails the rebuild with ErrPermanent.
func Rebuild(ctx context.Context, cfg RebuildConfig) error {
	_, err := run(ctx, cfg, Cut{})
	return err
}

// RebuildAsOf builds a version of cfg.Target from offset zero up to cut
// and keeps it beside the active one, read-only: it is sealed, never
// promoted, and stays until dropped (Snapshots.Drop). It returns the
// version's name. cfg.Target must implement Snapshots. Undecodable records
// and failures are handled as in Rebuild.
func RebuildAsOf(ctx context.Context, cfg RebuildConfig, cut Cut) (string, error) {
	if cut.IsZero() {
		return "", errors.New("rebuild as of: no cut")
	}
	if _, ok := cfg.Target.(Snapshots); !ok && cfg.Target != nil {
		return "", fmt.Errorf("rebuild %s as of %s: the projection keeps no as-of versions", cfg.Target.Name(), cut)
	}
	return run(ctx, cfg, cut)
}

func run(ctx context.Context, cfg RebuildConfig, cut Cut) (version string, err error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return "", err
	}
	r := &rebuild{cfg: cfg, name: cfg.Target.Name(), cut: cut}
	r.log = cfg.Logger.With("projection", r.name)
	rm, err := newRebuildMetrics(cfg.Registerer)
	if err != nil {
		return "", fmt.Errorf("rebuild %s: %w", r.name, err)
	}
	r.metrics = rm
	rm.running.WithLabelValues(r.name).Set(1)
	defer rm.running.WithLabelValues(r.name).Set(0)
	defer func() {
		r.close(ctx, err)
		if err != nil && !errors.Is(err, ctx.Err()) {
			err = fmt.Errorf("rebuild %s: %w", r.name, err)
		}
	}()
	if err := r.begin(ctx); err != nil {
		return "", err
	}
	runCtx, cancel := context.WithCancel(ctx)
	defer r.wg.Wait()
	defer cancel() // runs before wg.Wait: deferred calls run last-in first-out
	if err := r.consume(runCtx); err != nil {
		return "", err
	}
	if !cut.IsZero() {
		return r.version, r.seal(ctx)
	}
	return r.version, r.promote(ctx)
}

// rebuild is one run of Rebuild. Its steps run in order: begin (a new
// version, bound to the log, and where it starts), consume (one applier
// goroutine per partition fed by one poller), promote (wait until caught
// up, promote, catch up again while behind), close.
type rebuild struct {
	cfg     RebuildConfig
	cut     Cut // zero: a whole rebuild, promoted; else an as-of version
	name    string
	log     *slog.Logger
	metrics *rebuildMetrics

	meta    *kgo.Client // describes the topic and reads end offsets
	info    kafka.TopicInfo
	store   Store // writes into version only
	version string
	start   map[int32]int64 // checkpoints of the new version when it began
	// truncated lists the partitions where the active version is beyond
	// the log's end: the new version replaces it (Replacer) instead of
	// catching up with it.
	truncated []kafka.Truncation

	fetch      *kgo.Client
	appliers   []*applier
	committing atomic.Bool // a progress commit is in flight
	errc       chan error  // the first error of an applier
	wg         sync.WaitGroup
}

// begin describes the log, begins a version and reads where it starts.
func (r *rebuild) begin(ctx context.Context) error {
	meta, err := kafka.NewClient(r.cfg.Kafka)
	if err != nil {
		return err
	}
	r.meta = meta
	if r.info, err = kafka.DescribeTopic(ctx, meta, r.cfg.Topic); err != nil {
		return err
	}
	if err := r.checkBinding(ctx); err != nil {
		return err
	}
	for p := range r.cut.Positions {
		if p >= r.info.Partitions {
			return fmt.Errorf("as of %s: %w: partition %d, the log has %d", r.cut, ErrNoSuchPartition, p, r.info.Partitions)
		}
	}
	if r.cut.IsZero() {
		r.store, r.version, err = r.cfg.Target.Begin(ctx)
	} else {
		r.store, r.version, err = r.cfg.Target.(Snapshots).BeginAsOf(ctx, r.cut.String())
	}
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	r.log = r.log.With("version", r.version)
	r.log.Info("rebuild started", "partitions", r.info.Partitions)
	if err := bindLog(ctx, r.store, r.info); err != nil {
		return err
	}
	if r.start, err = r.store.Checkpoints(ctx); err != nil {
		return fmt.Errorf("checkpoints: %w", err)
	}
	return r.checkTruncated(ctx)
}

// checkBinding refuses to replace a projection bound to another cluster's
// log unless AdoptLog says to.
func (r *rebuild) checkBinding(ctx context.Context) error {
	err := bindLog(ctx, r.cfg.Target, r.info)
	switch {
	case err == nil || errors.Is(err, ErrLogChanged):
		return nil
	case errors.Is(err, ErrOtherLog) && r.cfg.AdoptLog:
		r.log.Warn("adopting a projection bound to another log: its content is replaced by this log's", "err", err)
		return nil
	}
	return err
}

// checkTruncated notes where the active version is beyond the log's end.
func (r *rebuild) checkTruncated(ctx context.Context) error {
	active, err := r.cfg.Target.Checkpoints(ctx)
	if err != nil {
		return fmt.Errorf("checkpoints of the active version: %w", err)
	}
	ends, err := kafka.EndOffsets(ctx, r.meta, r.cfg.Topic)
	if err != nil {
		return err
	}
	r.truncated = kafka.Truncations(active, ends)
	if len(r.truncated) == 0 {
		return nil
	}
	if _, ok := r.cfg.Target.(Replacer); !ok {
		return &TruncatedError{Projection: r.name, Parts: r.truncated}
	}
	r.log.Warn("the active version is beyond the log's end: the rebuilt version replaces it",
		"err", &TruncatedError{Projection: r.name, Parts: r.truncated})
	return nil
}

// swap makes the new version active: Promote, or Replace when the active
// version is beyond the log's end.
func (r *rebuild) swap(ctx context.Context) (bool, error) {
	if len(r.truncated) == 0 {
		return r.cfg.Target.Promote(ctx, r.version)
	}
	if err := r.cfg.Target.(Replacer).Replace(ctx, r.version); err != nil {
		return false, err
	}
	return true, nil
}

// consume starts an applier goroutine per partition and the poller that
// feeds them, all stopped when ctx ends.
func (r *rebuild) consume(ctx context.Context) error {
	n := r.info.Partitions
	offsets := map[int32]kgo.Offset{}
	for id := range n {
		offsets[id] = kgo.NewOffset().At(r.start[id])
	}
	cl, err := kafka.NewClient(r.cfg.Kafka,
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{r.cfg.Topic: offsets}),
		kgo.FetchMaxPartitionBytes(512<<10), // compressed: a fetch holds ~20k records once decompressed
		kgo.FetchMaxBytes(8<<20),
	)
	if err != nil {
		return err
	}
	r.fetch = cl
	m, _ := newMetrics(nil) // a rebuild's counters are its progress
	var ends map[int32]int64
	if !r.cut.IsZero() {
		if ends, err = kafka.EndOffsets(ctx, r.meta, r.cfg.Topic); err != nil {
			return err
		}
	}
	r.errc = make(chan error, int(n))
	r.appliers = make([]*applier, n)
	feeds := make([]chan fetched, n)
	place := kafka.NewPlacement(r.cfg.Codec, r.info)
	for id := range n {
		a := &applier{
			id: id, name: r.name, store: r.store, place: place, maxBatch: r.cfg.MaxBatch,
			log: r.log, m: m.forPartition(r.name, id),
		}
		a.next.Store(r.start[id])
		if !r.cut.IsZero() {
			a.cut = &partitionCut{byTime: !r.cut.Time.IsZero(), timeMS: r.cut.Time.UnixMilli()}
			a.cut.limit.Store(r.cut.limit(id, ends[id]))
		}
		r.appliers[id] = a
		feeds[id] = make(chan fetched, 1)
		r.wg.Go(func() { r.apply(ctx, a, feeds[id]) })
	}
	r.wg.Go(func() { r.poll(ctx, feeds) })
	return nil
}

// apply folds what the poller hands over into a's partition until ctx
// ends or a batch fails (reported on errc).
func (r *rebuild) apply(ctx context.Context, a *applier, in <-chan fetched) {
	var buf []*kgo.Record
	for {
		select {
		case <-ctx.Done():
			return
		case f := <-in:
			buf = gather(buf, f.recs, in, 0, r.cfg.MaxBatch)
		}
		_, err := a.process(ctx, buf, nil)
		clear(buf)
		if err != nil {
			if ctx.Err() == nil {
				r.errc <- err
			}
			return
		}
	}
}

// poll hands each partition's fetched records to its applier.
func (r *rebuild) poll(ctx context.Context, feeds []chan fetched) {
	for {
		fs := r.fetch.PollFetches(ctx)
		if ctx.Err() != nil || fs.IsClientClosed() {
			return
		}
		fs.EachError(func(t string, p int32, err error) {
			r.log.Warn("fetch error", "topic", t, "partition", p, "err", err)
		})
		fs.EachPartition(func(ftp kgo.FetchTopicPartition) {
			if len(ftp.Records) == 0 || ftp.Partition < 0 || int(ftp.Partition) >= len(feeds) {
				return
			}
			select {
			case feeds[ftp.Partition] <- fetched{recs: ftp.Records}:
			case <-ctx.Done():
			}
		})
	}
}

// promote waits until every partition reached the end offsets, then asks
// the target to promote; while it answers "behind", it reads the end
// offsets again and waits for those.
func (r *rebuild) promote(ctx context.Context) error {
	ends, err := kafka.EndOffsets(ctx, r.meta, r.cfg.Topic)
	if err != nil {
		return err
	}
	tick := time.NewTicker(rebuildTick)
	defer tick.Stop()
	var lastReport time.Time
	began := time.Now()
	for attempt := 0; ; {
		if err := r.tick(ctx, tick); err != nil {
			return err
		}
		if time.Since(lastReport) >= rebuildReport {
			r.report(ends)
			r.commitProgress(ctx)
			lastReport = time.Now()
		}
		if !r.caughtUp(ends) {
			continue
		}
		attempt++
		ok, err := r.swap(ctx)
		if err != nil {
			return fmt.Errorf("promote %s: %w", r.version, err)
		}
		if ok {
			r.report(ends)
			r.log.Info("rebuild promoted", "records", r.done(), "attempts", attempt,
				"elapsed", time.Since(began).Round(time.Millisecond))
			return nil
		}
		r.log.Debug("rebuild behind the live version; catching up", "attempt", attempt)
		if ends, err = kafka.EndOffsets(ctx, r.meta, r.cfg.Topic); err != nil {
			return err
		}
	}
}

// seal waits until every partition reached its cut, then seals the
// version.
func (r *rebuild) seal(ctx context.Context) error {
	tick := time.NewTicker(rebuildTick)
	defer tick.Stop()
	began := time.Now()
	for {
		limits := map[int32]int64{}
		for id, a := range r.appliers {
			limits[int32(id)] = a.cut.limit.Load()
		}
		r.report(limits)
		if r.caughtUp(limits) {
			break
		}
		if err := r.tick(ctx, tick); err != nil {
			return err
		}
	}
	if err := r.cfg.Target.(Snapshots).Seal(ctx, r.version); err != nil {
		return fmt.Errorf("seal %s: %w", r.version, err)
	}
	r.log.Info("as-of version built", "as_of", r.cut.String(), "records", r.done(),
		"elapsed", time.Since(began).Round(time.Millisecond))
	return nil
}

// tick waits for the next tick; an error when ctx ends or an applier
// failed.
func (r *rebuild) tick(ctx context.Context, tick *time.Ticker) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case err := <-r.errc:
		return err
	case <-tick.C:
		return nil
	}
}

// caughtUp reports whether every partition applied up to ends.
func (r *rebuild) caughtUp(ends map[int32]int64) bool {
	for id, a := range r.appliers {
		if a.next.Load() < ends[int32(id)] {
			return false
		}
	}
	return true
}

// done is the number of offsets replayed since begin.
func (r *rebuild) done() int64 {
	var n int64
	for id, a := range r.appliers {
		n += a.next.Load() - r.start[int32(id)]
	}
	return n
}

// report calls Progress with what is done and what there is to do.
func (r *rebuild) report(ends map[int32]int64) {
	var total int64
	for id := range r.appliers {
		total += ends[int32(id)] - r.start[int32(id)]
	}
	done := r.done()
	total = max(total, done)
	r.metrics.replayed.WithLabelValues(r.name).Set(float64(done))
	r.metrics.target.WithLabelValues(r.name).Set(float64(total))
	if r.cfg.Progress != nil {
		r.cfg.Progress(done, total)
	}
}

// close releases the clients and, when the rebuild failed, abandons its
// version (bounded, even when ctx ended).
func (r *rebuild) close(ctx context.Context, err error) {
	if r.fetch != nil {
		r.fetch.Close()
	}
	r.deleteGroup(ctx)
	if r.meta != nil {
		r.meta.Close()
	}
	if err == nil || r.version == "" {
		return
	}
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), rebuildAbandonIn)
	defer cancel()
	if aerr := r.cfg.Target.Abandon(actx, r.version); aerr != nil {
		r.log.Error("abandon version", "err", aerr)
	}
}
