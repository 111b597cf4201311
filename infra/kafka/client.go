package kafka

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/plugin/kotel"
	"github.com/twmb/franz-go/plugin/kslog"

	"github.com/rtstack/rtstack/infra/telemetry"
)

// DefaultTopic is the event log's name.
const DefaultTopic = "chat.events"

// DefaultPartitions is the partition count a new log is created with. It is
// fixed for the life of the topic: adding partitions would move rooms.
const DefaultPartitions = 6

// DefaultDeliveryTimeout is ClientConfig.DeliveryTimeout's default.
const DefaultDeliveryTimeout = 10 * time.Second

// ClientConfig configures a client of the chat log.
type ClientConfig struct {
	// Brokers are the seed brokers. Required.
	Brokers []string
	// SASL authenticates the client; the zero value does not.
	SASL SASL
	// TLS encrypts the connections; the zero value does not.
	TLS TLS
	// Compression is the producer's batch compression: none, gzip, snappy,
	// lz4 or zstd. Default DefaultCompression (snappy). Consumers read every
	// codec whatever this says.
	Compression string
	// Logger receives franz-go's warnings; nil discards them.
	Logger *slog.Logger
	// DeliveryTimeout bounds how long a produced record may wait for the
	// broker before the append fails. Default DefaultDeliveryTimeout
	// (10s), so a client whose broker went away gets an error rather than
	// waiting forever.
	DeliveryTimeout time.Duration
}

// Validate reports every problem of c once its defaults are applied,
// joined.
func (c ClientConfig) Validate() error {
	c = c.withDefaults()
	var errs []error
	if len(c.Brokers) == 0 {
		errs = append(errs, errors.New("kafka client: no seed brokers"))
	}
	if c.DeliveryTimeout < 0 {
		errs = append(errs, fmt.Errorf("kafka client: negative DeliveryTimeout %s", c.DeliveryTimeout))
	}
	if _, err := c.clusterOpts(); err != nil {
		errs = append(errs, fmt.Errorf("kafka client: %w", err))
	}
	return errors.Join(errs...)
}

// withDefaults returns c with every zero field set to its default.
func (c ClientConfig) withDefaults() ClientConfig {
	c.DeliveryTimeout = cmp.Or(c.DeliveryTimeout, DefaultDeliveryTimeout)
	return c
}

// OrLogger returns c with Logger set to l if it had none: components pass
// their own logger to the clients they build.
func (c ClientConfig) OrLogger(l *slog.Logger) ClientConfig {
	if c.Logger == nil {
		c.Logger = l
	}
	return c
}

// NewClient returns a franz-go client configured as a real cluster needs
// it, plus opts: an idempotent producer with acks=all (kgo's defaults,
// stated because the log's guarantees rest on them), key-hash partitioning
// compatible with the Java client, the configured compression, consumers
// that read committed records only (a transactional producer's aborted
// records never reach a projection), TLS and SASL as configured. kgo's
// other timeouts stand: 10s to dial, 10s over a request's own timeout,
// 30s of retries for metadata and admin requests.
func NewClient(cfg ClientConfig, opts ...kgo.Opt) (*kgo.Client, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cluster, _ := cfg.clusterOpts() // validated above
	base := append([]kgo.Opt{
		kgo.SeedBrokers(cfg.Brokers...),
		kgo.ClientID("rtstack"),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.RecordDeliveryTimeout(cfg.DeliveryTimeout),
		kgo.ProducerLinger(0),
		kgo.RecordPartitioner(Partitioner()),
		kgo.FetchMaxWait(200 * time.Millisecond),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
	}, cluster...)
	if telemetry.Enabled() {
		// Per-record publish and receive spans, parented on the record's
		// context and its traceparent header: only when they are recorded.
		base = append(base, kgo.WithHooks(kotel.NewKotel(kotel.WithTracer(
			kotel.NewTracer(kotel.TracerPropagator(telemetry.Propagator())))).Hooks()...))
	}
	if cfg.Logger != nil {
		base = append(base, kgo.WithLogger(kslog.New(quiet(cfg.Logger).With("component", "kafka"))))
	}
	cl, err := kgo.NewClient(append(base, opts...)...)
	if err != nil {
		return nil, fmt.Errorf("kafka client for %s: %w", strings.Join(cfg.Brokers, ","), err)
	}
	return cl, nil
}

// TopicInfo describes the log topic as the cluster has it.
type TopicInfo struct {
	Name       string
	Partitions int32
	// ID changes when the topic is deleted and created again: positions from
	// an older ID mean nothing in the new log.
	ID string
	// Cluster is the cluster's id: a real cluster's own, or the embedded
	// broker's (see ClusterIDFor). Topic ids are only unique within it.
	Cluster string
}

// LogID identifies the log across clusters: "TOPICID@CLUSTER".
func (i TopicInfo) LogID() string { return i.ID + "@" + i.Cluster }

// EnsureTopic creates topic with partitions, cleanup.policy=delete and
// unlimited retention if it does not exist, and returns what the cluster has. An existing topic keeps
// its partition count; a mismatch is reported in the returned info, not
// fixed, because repartitioning would break each room's order.
func EnsureTopic(ctx context.Context, cl *kgo.Client, topic string, partitions int32) (TopicInfo, error) {
	adm := kadm.NewClient(cl)
	retention, cleanup := "-1", "delete"
	resp, err := adm.CreateTopic(ctx, partitions, -1, map[string]*string{
		"cleanup.policy":  &cleanup,
		"retention.ms":    &retention,
		"retention.bytes": &retention,
	}, topic)
	if err != nil && !errors.Is(err, kerr.TopicAlreadyExists) && !errors.Is(resp.Err, kerr.TopicAlreadyExists) {
		return TopicInfo{}, fmt.Errorf("create topic %s: %w", topic, err)
	}
	if resp.Err != nil && !errors.Is(resp.Err, kerr.TopicAlreadyExists) {
		return TopicInfo{}, fmt.Errorf("create topic %s: %w", topic, resp.Err)
	}
	return DescribeTopic(ctx, cl, topic)
}

// DescribeTopic returns the partition count and id of topic.
func DescribeTopic(ctx context.Context, cl *kgo.Client, topic string) (TopicInfo, error) {
	adm := kadm.NewClient(cl)
	var last error
	// Metadata can lag a creation by a moment; a short bounded retry hides that.
	for range 50 {
		md, err := adm.Metadata(ctx, topic)
		if err != nil {
			return TopicInfo{}, fmt.Errorf("describe topic %s: %w", topic, err)
		}
		td, ok := md.Topics[topic]
		switch {
		case !ok:
			last = fmt.Errorf("topic %s not in metadata", topic)
		case td.Err != nil:
			last = fmt.Errorf("describe topic %s: %w", topic, td.Err)
		default:
			return TopicInfo{Name: topic, Partitions: int32(len(td.Partitions)), ID: td.ID.String(), Cluster: md.Cluster}, nil
		}
		select {
		case <-ctx.Done():
			return TopicInfo{}, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return TopicInfo{}, last
}

// EndOffsets returns, per partition, the offset the next record will get.
func EndOffsets(ctx context.Context, cl *kgo.Client, topic string) (map[int32]int64, error) {
	ends, err := kadm.NewClient(cl).ListEndOffsets(ctx, topic)
	if err != nil {
		return nil, fmt.Errorf("list end offsets of %s: %w", topic, err)
	}
	out := map[int32]int64{}
	var errs []error
	ends.Each(func(o kadm.ListedOffset) {
		if o.Err != nil {
			errs = append(errs, o.Err)
			return
		}
		out[o.Partition] = o.Offset
	})
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("list end offsets of %s: %w", topic, err)
	}
	return out, nil
}

// quiet raises l's level to warn unless it logs debug: franz-go narrates
// every group join and assignment at info, which drowns the service's own
// logs.
func quiet(l *slog.Logger) *slog.Logger {
	if l.Enabled(context.Background(), slog.LevelDebug) {
		return l
	}
	return slog.New(minLevel{l.Handler(), slog.LevelWarn})
}

type minLevel struct {
	slog.Handler
	min slog.Level
}

func (h minLevel) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= h.min && h.Handler.Enabled(ctx, l)
}

func (h minLevel) WithAttrs(attrs []slog.Attr) slog.Handler {
	return minLevel{h.Handler.WithAttrs(attrs), h.min}
}

func (h minLevel) WithGroup(name string) slog.Handler {
	return minLevel{h.Handler.WithGroup(name), h.min}
}

// CommitError is the first partition error of a group offset commit's
// response, naming the partition; nil if every partition committed.
func CommitError(resp *kmsg.OffsetCommitResponse) error {
	for _, t := range resp.Topics {
		for _, p := range t.Partitions {
			if err := kerr.ErrorForCode(p.ErrorCode); err != nil {
				return fmt.Errorf("commit %s partition %d: %w", t.Topic, p.Partition, err)
			}
		}
	}
	return nil
}
