package kafka

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"

	"github.com/twmb/franz-go/pkg/kfake"
)

// DefaultBrokerAddr is where the embedded broker listens by default.
const DefaultBrokerAddr = "127.0.0.1:9092"

// BrokerConfig configures the embedded broker.
type BrokerConfig struct {
	// Addr is host:port to listen on; port 0 picks a free one. Default
	// DefaultBrokerAddr (127.0.0.1:9092).
	Addr string
	// DataDir is the state directory; the log is kept in DataDir/kafka.
	// Required: without it the broker forgets everything on exit and is
	// several times slower.
	DataDir string
	// NoFsync acknowledges a produce once it is written to the page cache
	// instead of once it is synced to disk: faster, but an acknowledged
	// record can vanish in a power cut (a crash of the process alone loses
	// nothing). The zero value syncs: an ack means "on disk".
	NoFsync bool
	// SASL, when set, makes the broker require SCRAM (SHA-256 or SHA-512)
	// with these credentials from every client; the user may do anything.
	// Without it the broker is open to whoever reaches it, so Addr must
	// then be a loopback address.
	SASL SASL
	// Logger receives the broker's own logs; nil discards them.
	Logger *slog.Logger
}

// ErrOpenBroker refuses an embedded broker without credentials on an
// address other machines reach: anyone there could read every event,
// append as any user and delete the topic.
var ErrOpenBroker = errors.New("embedded broker: refusing to listen beyond loopback without SASL credentials")

// Validate reports every problem of c once its defaults are applied,
// joined.
func (c BrokerConfig) Validate() error {
	c = c.withDefaults()
	var errs []error
	if c.DataDir == "" {
		errs = append(errs, errors.New("embedded broker: DataDir is required"))
	}
	host, _, err := net.SplitHostPort(c.Addr)
	if err != nil {
		errs = append(errs, fmt.Errorf("embedded broker: Addr %q: %w", c.Addr, err))
	} else if !c.SASL.Enabled() && !isLoopback(host) {
		errs = append(errs, fmt.Errorf("%w (Addr %s)", ErrOpenBroker, c.Addr))
	}
	if err := c.SASL.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("embedded broker: %w", err))
	} else if c.SASL.Enabled() && c.SASL.MechanismName() == SASLPlain {
		errs = append(errs, fmt.Errorf("embedded broker: SASL %s is not offered, only %s and %s (PLAIN would send the password in clear text)", SASLPlain, SASLScramSHA256, SASLScramSHA512))
	}
	return errors.Join(errs...)
}

// isLoopback reports whether host names this machine only. An empty host
// (every interface) or any other name is not.
func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// withDefaults returns c with every zero field set to its default.
func (c BrokerConfig) withDefaults() BrokerConfig {
	c.Addr = cmp.Or(c.Addr, DefaultBrokerAddr)
	return c
}

// Broker is a running embedded Kafka-protocol broker.
type Broker struct {
	c *kfake.Cluster
}

// StartBroker starts an embedded broker that reloads the log persisted under
// cfg.DataDir. Close it to flush and release the port.
func StartBroker(cfg BrokerConfig) (*Broker, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	addr := cfg.Addr
	dir := filepath.Join(cfg.DataDir, "kafka")
	if err := forgetUsers(dir); err != nil {
		return nil, err
	}
	opts := []kfake.Opt{
		kfake.NumBrokers(1),
		kfake.DataDir(dir),
		// Used when the log is created; a persisted log keeps its own.
		kfake.ClusterID(ClusterIDFor(cfg.DataDir)),
		// kfake asks for 127.0.0.1:port; listen where we were told instead.
		// Listening does not block, and kfake's hook has no context to pass on.
		kfake.ListenFn(func(network, _ string) (net.Listener, error) {
			return (&net.ListenConfig{}).Listen(context.Background(), network, addr)
		}),
	}
	if !cfg.NoFsync {
		opts = append(opts, kfake.SyncWrites())
	}
	opts = append(opts, saslOpts(cfg.SASL)...)
	if cfg.Logger != nil {
		opts = append(opts, kfake.WithLogger(slogAdapter{cfg.Logger}))
	}
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		return nil, fmt.Errorf("start embedded broker on %s: %w", addr, err)
	}
	if cfg.SASL.Enabled() {
		if err := advertiseHandshakeV0(c); err != nil {
			c.Close()
			return nil, fmt.Errorf("start embedded broker on %s: %w", addr, err)
		}
	}
	return &Broker{c: c}, nil
}

// ClusterIDFor is the cluster id an embedded broker persisting under
// dataDir reports: derived from the host and the directory's absolute
// path, so the log of one DATA_DIR keeps its identity when it is deleted
// and created again, and the logs of two DATA_DIRs never share one (a
// projection store bound to one of them refuses the other). kfake's own
// default is "kfake" for every broker.
func ClusterIDFor(dataDir string) string {
	abs, err := filepath.Abs(dataDir)
	if err != nil {
		abs = dataDir
	}
	host, _ := os.Hostname()
	sum := sha256.Sum256([]byte(host + "\x00" + abs))
	return "rtstack-embedded-" + hex.EncodeToString(sum[:8])
}

// Addr is the address clients should dial.
func (b *Broker) Addr() string { return b.c.ListenAddrs()[0] }

// Close stops the broker and flushes its log to disk. It is idempotent.
func (b *Broker) Close() { b.c.Close() }

type slogAdapter struct{ l *slog.Logger }

func (a slogAdapter) Logf(level kfake.LogLevel, msg string, args ...any) {
	lv := slog.LevelDebug
	switch level {
	case kfake.LogLevelError:
		lv = slog.LevelError
	case kfake.LogLevelWarn:
		lv = slog.LevelWarn
	case kfake.LogLevelInfo:
		lv = slog.LevelInfo
	}
	a.l.Log(context.Background(), lv, fmt.Sprintf(msg, args...), "component", "broker")
}
