package projections

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/rtstack/rtstack/infra/kafka"
)

// ErrLogChanged: the store's checkpoints belong to an earlier log of the
// same name on the same cluster: the topic was deleted and created again
// (or the embedded broker's DATA_DIR was emptied), so its offsets mean
// something else. The projection must be rebuilt from the new log.
var ErrLogChanged = errors.New("the log was recreated (topic id changed): checkpoints belong to the old log; rebuild the projection")

// ErrOtherLog: the store is bound to the log of another cluster (another
// Kafka cluster, or the embedded broker of another DATA_DIR): two
// deployments share one store. Nothing is applied and no rebuild starts by
// itself, or each would wipe the other's projection in turn; give each
// deployment its own store, or adopt the store deliberately
// (RebuildConfig.AdoptLog).
var ErrOtherLog = errors.New("the projection store is bound to another log")

// LogID is the identity a store is bound to: the topic id and the id of
// the cluster that holds it (kafka.TopicInfo.LogID). A binding recorded
// before clusters were (a bare topic id) has no cluster.
type LogID struct{ Topic, Cluster string }

// ParseLogID reads a binding as kafka.TopicInfo.LogID writes it.
func ParseLogID(s string) LogID {
	topic, cluster, _ := strings.Cut(s, "@")
	return LogID{Topic: topic, Cluster: cluster}
}

func (l LogID) String() string {
	if l.Cluster == "" {
		return "topic id " + l.Topic
	}
	return fmt.Sprintf("topic id %s on cluster %s", l.Topic, l.Cluster)
}

// LogMismatchError is what a LogBinder returns when the version is bound
// to another log than the caller's. It wraps ErrOtherLog when both name
// their cluster and the clusters differ, else ErrLogChanged (the same
// cluster's log was recreated).
type LogMismatchError struct {
	Store   string // the store and version, e.g. "postgres version rtstack_v3"
	Bound   LogID  // the log the version is bound to
	Reading LogID  // the log the caller reads
}

// LogMismatch builds the error of a store whose version is bound to the
// log bound while the caller reads reading (both as LogID strings).
func LogMismatch(store, bound, reading string) error {
	return &LogMismatchError{Store: store, Bound: ParseLogID(bound), Reading: ParseLogID(reading)}
}

// OtherCluster reports whether the two logs are on different clusters.
func (e *LogMismatchError) OtherCluster() bool {
	return e.Bound.Cluster != "" && e.Reading.Cluster != "" && e.Bound.Cluster != e.Reading.Cluster
}

func (e *LogMismatchError) Error() string {
	return fmt.Sprintf("%v: %s is bound to %s, this process reads %s", e.Unwrap(), e.Store, e.Bound, e.Reading)
}

func (e *LogMismatchError) Unwrap() error {
	if e.OtherCluster() {
		return ErrOtherLog
	}
	return ErrLogChanged
}

// boundElsewhere reports whether err says the store is bound to a log
// other than the one read (recreated or another cluster's).
func boundElsewhere(err error) bool {
	return errors.Is(err, ErrLogChanged) || errors.Is(err, ErrOtherLog)
}

// LogBinder is implemented by stores that remember which log their
// checkpoints belong to. The runtime calls BindLog before reading, with the
// log's identity (kafka.TopicInfo.LogID: topic id @ cluster id): the first
// call records it, later calls with another identity return a
// LogMismatch error. A binding that is a bare topic id (recorded before
// clusters were) is completed with the cluster when the topic ids match.
// Optional: a store without it is not checked.
//
// A Versioned store that implements it promotes a version bound to another
// log than the active version's without comparing checkpoints (those of the
// old log mean nothing): that is how a projection recovers from a recreated
// log, with a rebuild.
type LogBinder interface {
	BindLog(ctx context.Context, logID string) error
}

// bindLog checks s against the log's identity, if s can.
func bindLog(ctx context.Context, s Store, info kafka.TopicInfo) error {
	b, ok := s.(LogBinder)
	if !ok || info.ID == "" {
		return nil
	}
	return b.BindLog(ctx, info.LogID())
}
