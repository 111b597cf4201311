package projections

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/rtstack/rtstack/infra/kafka"
	"github.com/rtstack/rtstack/schemas"
)

// RebuildConfig configures Rebuild.
type RebuildConfig struct {
	// Brokers are the seed brokers of the log. Required.
	Brokers []string
	// Topic is the event log. Default "chat.events".
	Topic string
	// Codec decodes records. Required.
	Codec *schemas.Codec
	// Target is the projection to rebuild. Required.
	Target Versioned
	// Progress, if set, is called about ten times a second (and once at the
	// end) with the records replayed so far and the records to replay
	// (total grows when the live tail moves during catch-up).
	Progress func(done, total int64)
	// MaxBatch bounds the records of one Apply. Default 5000.
	MaxBatch int
	// Logger receives progress and errors; nil discards them.
	Logger *slog.Logger
}

// Validate reports every problem of cfg at once.
func (c RebuildConfig) Validate() error {
	var errs []error
	if len(c.Brokers) == 0 {
		errs = append(errs, errors.New("rebuild: no brokers"))
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
// skipped (the live projector parked them already).
func Rebuild(ctx context.Context, cfg RebuildConfig) (err error) {
	if err := cfg.Validate(); err != nil {
		return err
	}
	if cfg.Topic == "" {
		cfg.Topic = kafka.DefaultTopic
	}
	if cfg.MaxBatch == 0 {
		cfg.MaxBatch = 5000
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	name := cfg.Target.Name()
	log = log.With("projection", name)

	meta, err := kafka.NewClient(kafka.ClientConfig{Brokers: cfg.Brokers, Logger: cfg.Logger})
	if err != nil {
		return fmt.Errorf("rebuild %s: %w", name, err)
	}
	defer meta.Close()
	info, err := kafka.DescribeTopic(ctx, meta, cfg.Topic)
	if err != nil {
		return fmt.Errorf("rebuild %s: %w", name, err)
	}

	store, version, err := cfg.Target.Begin(ctx)
	if err != nil {
		return fmt.Errorf("rebuild %s: begin: %w", name, err)
	}
	log = log.With("version", version)
	log.Info("rebuild started", "partitions", info.Partitions)
	defer func() {
		if err == nil {
			return
		}
		actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		if aerr := cfg.Target.Abandon(actx, version); aerr != nil {
			log.Error("abandon version", "err", aerr)
		}
	}()

	if err := bindLog(ctx, store, info.ID); err != nil {
		return fmt.Errorf("rebuild %s: %w", name, err)
	}
	start, err := store.Checkpoints(ctx)
	if err != nil {
		return fmt.Errorf("rebuild %s: checkpoints: %w", name, err)
	}
	offsets := map[int32]kgo.Offset{}
	for id := range info.Partitions {
		offsets[id] = kgo.NewOffset().At(start[id])
	}
	cl, err := kafka.NewClient(kafka.ClientConfig{Brokers: cfg.Brokers, Logger: cfg.Logger},
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{cfg.Topic: offsets}),
		kgo.FetchMaxPartitionBytes(512<<10), // compressed: a fetch holds ~20k records once decompressed
		kgo.FetchMaxBytes(8<<20),
	)
	if err != nil {
		return fmt.Errorf("rebuild %s: %w", name, err)
	}
	defer cl.Close()

	m, _ := newMetrics(nil) // a rebuild's counters are its progress
	runCtx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel() // runs before wg.Wait: deferred calls run last-in first-out
	errc := make(chan error, int(info.Partitions)+1)
	parts := make([]*partition, info.Partitions)
	chans := make([]chan []*kgo.Record, info.Partitions)
	for id := range info.Partitions {
		p := &partition{
			id: id, name: name, store: store, codec: cfg.Codec, maxBatch: cfg.MaxBatch,
			log: log, m: m.forPartition(name, id),
		}
		p.next.Store(start[id])
		parts[id] = p
		chans[id] = make(chan []*kgo.Record, 1)
		wg.Add(1)
		go func() {
			defer wg.Done()
			var buf []*kgo.Record
			for {
				select {
				case <-runCtx.Done():
					return
				case recs := <-chans[id]:
					buf = append(buf[:0], recs...)
				}
			drain:
				for len(buf) < cfg.MaxBatch {
					select {
					case more := <-chans[id]:
						buf = append(buf, more...)
					default:
						break drain
					}
				}
				_, err := p.process(runCtx, buf, nil)
				clear(buf)
				if err != nil {
					if runCtx.Err() == nil {
						errc <- err
					}
					return
				}
			}
		}()
	}
	wg.Add(1)
	go func() { // the poller hands each partition's records to its goroutine
		defer wg.Done()
		for {
			fs := cl.PollFetches(runCtx)
			if runCtx.Err() != nil || fs.IsClientClosed() {
				return
			}
			fs.EachError(func(t string, p int32, err error) {
				log.Warn("fetch error", "topic", t, "partition", p, "err", err)
			})
			fs.EachPartition(func(ftp kgo.FetchTopicPartition) {
				if len(ftp.Records) == 0 || ftp.Partition < 0 || ftp.Partition >= info.Partitions {
					return
				}
				select {
				case chans[ftp.Partition] <- ftp.Records:
				case <-runCtx.Done():
				}
			})
		}
	}()

	var startSum int64
	for _, o := range start {
		startSum += o
	}
	ends, err := kafka.EndOffsets(ctx, meta, cfg.Topic)
	if err != nil {
		return fmt.Errorf("rebuild %s: %w", name, err)
	}
	report := func() {
		if cfg.Progress == nil {
			return
		}
		var done, total int64
		for id, p := range parts {
			done += p.next.Load()
			total += ends[int32(id)]
		}
		cfg.Progress(done-startSum, max(total-startSum, done-startSum))
	}
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	lastReport := time.Time{}
	began := time.Now()
	for attempt := 0; ; {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-errc:
			return fmt.Errorf("rebuild %s: %w", name, err)
		case <-tick.C:
		}
		if time.Since(lastReport) >= 100*time.Millisecond {
			report()
			lastReport = time.Now()
		}
		caught := true
		for id, p := range parts {
			if p.next.Load() < ends[int32(id)] {
				caught = false
				break
			}
		}
		if !caught {
			continue
		}
		attempt++
		ok, err := cfg.Target.Promote(ctx, version)
		if err != nil {
			return fmt.Errorf("rebuild %s: promote %s: %w", name, version, err)
		}
		if ok {
			report()
			var n int64
			for _, p := range parts {
				n += p.next.Load()
			}
			log.Info("rebuild promoted", "records", n-startSum, "attempts", attempt,
				"elapsed", time.Since(began).Round(time.Millisecond))
			return nil
		}
		log.Debug("rebuild behind the live version; catching up", "attempt", attempt)
		if ends, err = kafka.EndOffsets(ctx, meta, cfg.Topic); err != nil {
			return fmt.Errorf("rebuild %s: %w", name, err)
		}
	}
}
