package kafka

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// ErrTopicConfig marks a log topic whose configuration would lose or move
// events: the wrong partition count, compaction, or finite retention.
var ErrTopicConfig = errors.New("log topic misconfigured")

// CheckTopic reads topic's configuration from the cluster and reports what
// breaks the log's promises. The error (wrapping ErrTopicConfig) names
// every fatal problem: a partition count other than partitions (rooms
// would sit elsewhere than their records), cleanup.policy other than
// delete (compaction keeps one record per room), and retention.ms or
// retention.bytes other than -1 (old events vanish, and with them every
// rebuild). The warnings are problems a running system survives:
// min.insync.replicas below 2 although the replication factor allows it,
// so one broker's loss can lose acknowledged events; and any of those
// settings the cluster does not report, which cannot be checked.
func CheckTopic(ctx context.Context, cl *kgo.Client, topic string, partitions int32) (warnings []string, err error) {
	adm := kadm.NewClient(cl)
	md, err := adm.Metadata(ctx, topic)
	if err != nil {
		return nil, fmt.Errorf("check topic %s: %w", topic, err)
	}
	td, ok := md.Topics[topic]
	switch {
	case !ok:
		return nil, fmt.Errorf("check topic %s: not in metadata", topic)
	case td.Err != nil:
		return nil, fmt.Errorf("check topic %s: %w", topic, td.Err)
	}
	rcs, err := adm.DescribeTopicConfigs(ctx, topic)
	if err != nil {
		return nil, fmt.Errorf("check topic %s: describe configs: %w", topic, err)
	}
	rc, err := rcs.On(topic, nil)
	if err == nil {
		err = rc.Err
	}
	if err != nil {
		return nil, fmt.Errorf("check topic %s: describe configs: %w", topic, err)
	}
	configs := map[string]string{}
	for _, c := range rc.Configs {
		configs[c.Key] = c.MaybeValue()
	}
	var problems []string
	if n := int32(len(td.Partitions)); n != partitions {
		problems = append(problems, fmt.Sprintf("it has %d partitions, %d are configured (the count is fixed for the life of the log: configure %d, or recreate the topic)", n, partitions, n))
	}
	for _, c := range logTopicConfigs {
		v, ok := configs[c.key]
		switch {
		case !ok: // a Kafka-compatible service that does not report it
			warnings = append(warnings, fmt.Sprintf("topic %s: the cluster does not report %s; make sure it is %s", topic, c.key, c.want))
		case v != c.want:
			problems = append(problems, fmt.Sprintf("%s=%s: %s; want %s", c.key, v, c.why, c.want))
		}
	}
	// Redpanda has no min.insync.replicas: acks=all waits for a Raft
	// majority there, which is the same guarantee.
	if v, ok := configs["min.insync.replicas"]; ok {
		if rf := replicationFactor(td); rf >= 3 {
			if isr, _ := strconv.Atoi(v); isr < 2 {
				warnings = append(warnings, fmt.Sprintf("topic %s: min.insync.replicas=%s with replication factor %d: losing one broker can lose acknowledged events; want 2", topic, v, rf))
			}
		}
	}
	if len(problems) > 0 {
		return warnings, fmt.Errorf("%w: topic %s: %s", ErrTopicConfig, topic, strings.Join(problems, "; "))
	}
	return warnings, nil
}

// logTopicConfigs are the settings without which the log loses events.
var logTopicConfigs = []struct{ key, want, why string }{
	{"cleanup.policy", "delete", "compaction keeps only the last event per room"},
	{"retention.ms", "-1", "the broker deletes old events, and rebuilds need them all"},
	{"retention.bytes", "-1", "the broker deletes old events, and rebuilds need them all"},
}

// replicationFactor is the fewest replicas of any partition of td.
func replicationFactor(td kadm.TopicDetail) int {
	rf := 0
	for _, p := range td.Partitions {
		if rf == 0 || len(p.Replicas) < rf {
			rf = len(p.Replicas)
		}
	}
	return rf
}
