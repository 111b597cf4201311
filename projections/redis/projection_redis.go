package redis

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/rtstack/rtstack/events"
	"github.com/rtstack/rtstack/projections"
)

// Defaults of Config.
const (
	DefaultPrefix    = "rtstack:"
	DefaultWindow    = 60 * time.Minute
	DefaultChunkSize = 1000
	// DefaultBuildChunkSize is Config.BuildChunkSize's default.
	DefaultBuildChunkSize = 20_000
)

// Config configures the Redis projection.
type Config struct {
	// Redis is the client of the one Redis instance holding the projection.
	// Required; the caller owns it and closes it after the last call.
	Redis *goredis.Client
	// Prefix starts every key of the projection. Default DefaultPrefix
	// ("rtstack:").
	Prefix string
	// Window is how much event time the per-minute buckets of a room keep,
	// counted back from the room's newest event minute. A whole number of
	// minutes; default DefaultWindow (60 minutes).
	Window time.Duration
	// ChunkSize is the number of records folded by one script call (each
	// chunk is atomic with its own checkpoint advance; a batch's chunks go in
	// one pipeline). Default DefaultChunkSize (1000). Larger chunks block
	// Redis longer.
	ChunkSize int
	// BuildChunkSize is the number of records folded in Go into one
	// MULTI/EXEC for a version being built (a rebuild's, an as-of one's;
	// see doc.go): a bigger chunk folds more records into each key's one
	// write, and the fold holds what one chunk touches in memory. Default
	// DefaultBuildChunkSize (20000, a rebuild's batch).
	BuildChunkSize int
	// Logger receives version drops; nil discards.
	Logger *slog.Logger
}

// Validate reports every problem of c; Open calls it on the effective
// values, after WithDefaults.
func (c Config) Validate() error {
	var errs []error
	if c.Redis == nil {
		errs = append(errs, errors.New("redis projection: no Redis client"))
	}
	if c.Window < 0 || c.Window%time.Minute != 0 {
		errs = append(errs, fmt.Errorf("redis projection: window %s is not a positive whole number of minutes", c.Window))
	}
	if c.ChunkSize < 0 || c.BuildChunkSize < 0 {
		errs = append(errs, fmt.Errorf("redis projection: chunk size %d / build chunk size %d is negative", c.ChunkSize, c.BuildChunkSize))
	}
	return errors.Join(errs...)
}

// WithDefaults returns c with every zero optional field set to its
// default; Open validates the result.
func (c Config) WithDefaults() Config {
	if c.Prefix == "" {
		c.Prefix = DefaultPrefix
	}
	if c.Window == 0 {
		c.Window = DefaultWindow
	}
	if c.ChunkSize == 0 {
		c.ChunkSize = DefaultChunkSize
	}
	if c.BuildChunkSize == 0 {
		c.BuildChunkSize = DefaultBuildChunkSize
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// Projection is the Redis projection: room counters, per-minute buckets and
// leaderboards, rebuilt blue/green under versioned key prefixes. Its Store
// methods work on the version active at the instant of each call. It is
// safe for concurrent use.
type Projection struct {
	cfg  Config
	rdb  *goredis.Client
	span int64 // (window-1) minutes in ms: the buckets kept below the newest

	// Epochs name incarnations of the data (see applyScript): a partition's
	// position, as the runtime holds it, belongs to the epoch seen by Open
	// or by the Apply that last answered a reset for it.
	instance string       // random, makes fresh epochs unique
	seq      atomic.Int64 // fresh epochs handed out
	mu       sync.Mutex   // guards epoch, epochs and logID
	epoch    string       // seen by Open
	epochs   map[int32]string
	// logID is the topic id the last successful BindLog bound the active
	// version to: a version the apply script re-creates after data loss is
	// bound to it, and Apply refuses an active version bound to another.
	logID string
}

var (
	_ projections.Versioned    = (*Projection)(nil)
	_ projections.Store        = (*versionStore)(nil)
	_ projections.LossDetector = (*Projection)(nil)
)

// Open loads the scripts, makes sure an active version exists (an empty one
// on a fresh Redis) and finishes dropping versions a crash left behind.
func Open(ctx context.Context, cfg Config) (*Projection, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	var rnd [8]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		return nil, fmt.Errorf("redis projection: %w", err)
	}
	p := &Projection{
		cfg: cfg, rdb: cfg.Redis, span: int64(cfg.Window/time.Millisecond) - 60_000,
		instance: hex.EncodeToString(rnd[:]), epochs: map[int32]string{},
	}
	if err := p.loadScripts(ctx); err != nil {
		return nil, err
	}
	res, err := p.run(ctx, initScript, cfg.Prefix, p.freshEpoch()).StringSlice()
	if err != nil {
		return nil, fmt.Errorf("redis projection: init: %w", err)
	}
	if len(res) != 2 {
		return nil, fmt.Errorf("redis projection: init: unexpected reply %q", res)
	}
	p.epoch = res[1]
	dropping, err := p.rdb.SMembers(ctx, cfg.Prefix+"dropping").Result()
	if err != nil {
		return nil, fmt.Errorf("redis projection: list dropped versions: %w", err)
	}
	for _, v := range dropping {
		if err := p.drop(ctx, v); err != nil {
			return nil, err
		}
	}
	return p, nil
}

func (p *Projection) loadScripts(ctx context.Context) error {
	// One at a time: Script.Load on a pipeline would record the empty
	// reply as the script's hash before the pipeline runs.
	for _, s := range allScripts {
		if err := s.Load(ctx, p.rdb).Err(); err != nil {
			return fmt.Errorf("redis projection: load scripts: %w", err)
		}
	}
	return nil
}

// run calls a script by its hash, loading it if Redis lost it (a restart).
func (p *Projection) run(ctx context.Context, s *goredis.Script, args ...any) *goredis.Cmd {
	return s.Run(ctx, p.rdb, nil, args...)
}

// Name implements projections.Store.
func (p *Projection) Name() string { return "redis" }

// Checkpoints returns the active version's checkpoints.
func (p *Projection) Checkpoints(ctx context.Context) (map[int32]int64, error) {
	return p.checkpoints(ctx, "")
}

// Apply folds recs into the active version; see projections.Store. If
// Redis lost the projection's data since this partition's position was
// read (a restart without persistence), it applies nothing, re-creates an
// empty active version if none exists (exactly once, whoever calls first),
// and returns an error wrapping projections.ErrStoreReset: the runtime then
// reloads Checkpoints (empty: the log is replayed from offset zero).
func (p *Projection) Apply(ctx context.Context, partition int32, recs []events.Record, next int64) error {
	if err := checkNext(recs, next); err != nil {
		return err
	}
	return p.applyScripted(ctx, "", partition, recs, next)
}

// checkNext refuses a next checkpoint that is not past recs.
func checkNext(recs []events.Record, next int64) error {
	if n := len(recs); n > 0 && recs[n-1].Offset >= next {
		return fmt.Errorf("redis projection: next %d is not past the last record's offset %d", next, recs[n-1].Offset)
	}
	return nil
}

func (p *Projection) checkpoints(ctx context.Context, version string) (map[int32]int64, error) {
	kv, err := p.run(ctx, checkpointsScript, p.cfg.Prefix, version).StringSlice()
	if err != nil {
		return nil, fmt.Errorf("redis projection: read checkpoints: %w", err)
	}
	out := make(map[int32]int64, len(kv)/2)
	for i := 0; i+1 < len(kv); i += 2 {
		part, err1 := strconv.ParseInt(kv[i], 10, 32)
		off, err2 := strconv.ParseInt(kv[i+1], 10, 64)
		if err := errors.Join(err1, err2); err != nil {
			return nil, fmt.Errorf("redis projection: checkpoint %q=%q: %w", kv[i], kv[i+1], err)
		}
		out[int32(part)] = off
	}
	return out, nil
}

// applyScripted encodes recs in chunks of ChunkSize and sends every
// chunk's applyScript call in one pipeline. Each chunk advances the
// checkpoint to the offset of the chunk after it (next for the last), and
// requires the checkpoint the chunk before it set, so a failed chunk stops
// the ones after it from skipping records.
func (p *Projection) applyScripted(ctx context.Context, version string, partition int32, recs []events.Record, next int64) error {
	part := strconv.FormatInt(int64(partition), 10)
	span := strconv.FormatInt(p.span, 10)
	var epoch, fresh, logID string
	if version == "" {
		epoch, fresh = p.partitionEpoch(partition), p.freshEpoch()
		p.mu.Lock()
		logID = p.logID
		p.mu.Unlock()
	}
	chunk := p.cfg.ChunkSize
	var calls [][]any
	req := int64(-1)
	for start := 0; start == 0 || start < len(recs); start += chunk {
		end := min(start+chunk, len(recs))
		cp := next
		if end < len(recs) {
			cp = recs[end].Offset
		}
		args := make([]any, 9, 9+6*(end-start))
		args[0], args[1], args[2] = p.cfg.Prefix, version, part
		args[3], args[4], args[5] = strconv.FormatInt(cp, 10), strconv.FormatInt(req, 10), span
		args[6], args[7], args[8] = epoch, fresh, logID
		for _, r := range recs[start:end] {
			if r.Partition != partition {
				return fmt.Errorf("redis projection: record at %s in a batch of partition %d", r.Position, partition)
			}
			args = appendOp(args, r)
		}
		calls = append(calls, args)
		req = cp
	}
	err := p.exec(ctx, calls)
	if err != nil && isNoScript(err) {
		if err := p.loadScripts(ctx); err != nil {
			return err
		}
		err = p.exec(ctx, calls)
	}
	if err != nil {
		if reset := p.reset(partition, version, err); reset != nil {
			return reset
		}
		if f := strings.Fields(err.Error()); len(f) == 3 && f[0] == "RTSTACK" && f[1] == "log" {
			return fmt.Errorf("redis projection: partition %d: %w", partition, projections.LogMismatch("the active version", f[2], logID))
		}
		return fmt.Errorf("redis projection: apply %d records of partition %d: %w", len(recs), partition, err)
	}
	if c, ok := boardChange(recs); ok && version == "" {
		p.notify(ctx, c)
	}
	return nil
}

// reset turns the apply script's answer that the data is gone into an
// error wrapping projections.ErrStoreReset, and records the new epoch as
// the partition's (the runtime reads the checkpoints next); nil for any
// other error.
func (p *Projection) reset(partition int32, version string, err error) error {
	msg := err.Error()
	if version != "" {
		if strings.HasPrefix(msg, "RTSTACK version ") && strings.HasSuffix(msg, " does not exist") {
			// A version being built vanished with the rest of the data.
			return fmt.Errorf("redis projection: %s: %w", msg, projections.ErrStoreReset)
		}
		return nil
	}
	f := strings.Fields(msg)
	if len(f) < 3 || f[0] != "RTSTACK" || (f[1] != "reset" && f[1] != "reset-created") {
		return nil
	}
	p.mu.Lock()
	p.epochs[partition] = f[2]
	p.mu.Unlock()
	if f[1] == "reset-created" && len(f) >= 4 {
		p.cfg.Logger.Warn("redis projection: the active version was gone (Redis lost its data); created an empty one, the log is replayed from its start",
			"version", f[3], "partition", partition)
	}
	return fmt.Errorf("redis projection: partition %d: the data was lost and re-created (%s): %w", partition, f[1], projections.ErrStoreReset)
}

// partitionEpoch returns the epoch the runtime's position of partition
// belongs to.
func (p *Projection) partitionEpoch(partition int32) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	if ep, ok := p.epochs[partition]; ok {
		return ep
	}
	return p.epoch
}

// freshEpoch returns an epoch no one used before.
func (p *Projection) freshEpoch() string {
	return p.instance + "-" + strconv.FormatInt(p.seq.Add(1), 10)
}

func (p *Projection) exec(ctx context.Context, calls [][]any) error {
	if len(calls) == 1 {
		return applyScript.EvalSha(ctx, p.rdb, nil, calls[0]...).Err()
	}
	pipe := p.rdb.Pipeline()
	cmds := make([]*goredis.Cmd, len(calls))
	for i, args := range calls {
		cmds[i] = applyScript.EvalSha(ctx, pipe, nil, args...)
	}
	_, _ = pipe.Exec(ctx)
	for _, c := range cmds {
		if err := c.Err(); err != nil {
			return err
		}
	}
	return nil
}

func isNoScript(err error) bool {
	return err != nil && strings.HasPrefix(err.Error(), "NOSCRIPT")
}

// appendOp appends the script's encoding of r's event; events that change
// nothing here (edits, deletes, webhooks) are left out: the checkpoint
// still moves past them.
func appendOp(args []any, r events.Record) []any {
	off := strconv.FormatInt(r.Offset, 10)
	switch e := r.Event.(type) {
	case *events.MessageSent:
		return append(args, "S", off, e.Room, e.User, strconv.FormatInt(minuteOf(e.Time), 10), e.MessageID)
	case *events.ReactionAdded:
		return append(args, "A", off, e.Room, e.User, e.MessageID, reactionMember(e.MessageID, e.User, e.Emoji), reactionMember(e.MessageID, e.User, ""))
	case *events.ReactionRemoved:
		return append(args, "D", off, e.Room, e.User, e.MessageID, reactionMember(e.MessageID, e.User, e.Emoji), reactionMember(e.MessageID, e.User, ""))
	case *events.MemberJoined:
		return append(args, "J", off, e.Room, e.User)
	case *events.MemberLeft:
		return append(args, "L", off, e.Room, e.User)
	}
	return args
}

// minuteOf returns the start of the event-time minute of ms.
func minuteOf(ms int64) int64 {
	m := ms - ms%60_000
	if ms < 0 && ms%60_000 != 0 {
		m -= 60_000
	}
	return m
}

// reactionMember is a reaction's entry in its room's reaction set: length
// prefixes make it unambiguous whatever the ids contain.
func reactionMember(messageID, user, emoji string) string {
	return strconv.Itoa(len(messageID)) + ":" + messageID + strconv.Itoa(len(user)) + ":" + user + emoji
}

var (
	_ projections.Classifier = (*Projection)(nil)
	_ projections.Classifier = (*versionStore)(nil)
)

// Retryable implements projections.Classifier with IsRetryable: the
// runtime retries an Apply only when it says so, and stops the partition
// otherwise.
func (p *Projection) Retryable(err error) bool { return IsRetryable(err) }

// Retryable implements projections.Classifier with IsRetryable.
func (s *versionStore) Retryable(err error) bool { return IsRetryable(err) }

// IsRetryable reports whether err from the projection is worth retrying
// later (Redis is away, busy, loading or out of memory) rather than a bug
// or bad input (a key of the wrong type, a script error, a gap).
func IsRetryable(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) {
		return false
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, goredis.ErrClosed) || errors.Is(err, goredis.ErrPoolTimeout) || errors.Is(err, goredis.TxFailedErr) {
		return true
	}
	var ne net.Error
	if errors.As(err, &ne) {
		return true
	}
	msg := err.Error()
	for _, p := range []string{"LOADING", "BUSY", "TRYAGAIN", "MASTERDOWN", "CLUSTERDOWN", "READONLY", "NOSCRIPT", "OOM", "connection refused", "connection reset", "broken pipe", "i/o timeout"} {
		if strings.Contains(msg, p) {
			return true
		}
	}
	return false
}

// DetectsLoss implements projections.LossDetector: Redis may lose the
// projection's data (no persistence), and Apply notices it, so the runtime
// probes idle partitions with empty batches.
func (p *Projection) DetectsLoss() bool { return true }
