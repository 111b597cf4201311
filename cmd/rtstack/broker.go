package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"

	"github.com/peterbourgon/ff/v3/ffcli"

	"github.com/rtstack/rtstack/infra/kafka"
	"github.com/rtstack/rtstack/schemas"
)

func brokerCommand() *ffcli.Command {
	var cfg config
	return command("broker", "broker", "run the embedded Kafka-protocol broker alone", &cfg, nil,
		func(ctx context.Context, _ []string) error {
			if err := errors.Join(cfg.validate(false), cfg.validateBroker()); err != nil {
				return err
			}
			log := cfg.logger()
			b, err := startBroker(ctx, &cfg, log)
			if err != nil {
				return err
			}
			defer b.Close()
			<-ctx.Done()
			log.Info("stopping broker")
			return nil
		})
}

// startBroker starts the embedded broker and creates the log topic.
func startBroker(ctx context.Context, cfg *config, log *slog.Logger) (*kafka.Broker, error) {
	b, err := kafka.StartBroker(cfg.brokerConfig(nil))
	if err != nil {
		return nil, fmt.Errorf("%w (is another rtstack or Kafka already listening there? set BROKER_ADDR)", err)
	}
	info, err := ensureTopic(ctx, cfg, log, []string{b.Addr()})
	if err != nil {
		b.Close()
		return nil, err
	}
	dir, _ := filepath.Abs(filepath.Join(cfg.DataDir, "kafka"))
	log.Info("embedded broker listening", "addr", b.Addr(), "data_dir", dir, "topic", info.Name, "partitions", info.Partitions, "fsync", cfg.BrokerFsync)
	return b, nil
}

// ensureTopic creates the log topic if it is missing, then checks its
// configuration: a topic that would lose or move events stops the start
// (the error names the settings), one that risks acknowledged events on a
// broker's loss is logged.
func ensureTopic(ctx context.Context, cfg *config, log *slog.Logger, brokers []string) (kafka.TopicInfo, error) {
	kc := cfg.kafkaConfig(nil)
	kc.Brokers = brokers
	cl, err := kafka.NewClient(kc)
	if err != nil {
		return kafka.TopicInfo{}, err
	}
	defer cl.Close()
	info, err := kafka.EnsureTopic(ctx, cl, cfg.Topic, int32(cfg.Partitions))
	if err != nil {
		return info, fmt.Errorf("%w (brokers %v)", err, brokers)
	}
	warnings, err := kafka.CheckTopic(ctx, cl, cfg.Topic, int32(cfg.Partitions))
	for _, w := range warnings {
		log.Warn(w)
	}
	if err != nil {
		return info, fmt.Errorf("%w (TOPIC and PARTITIONS name the log; fix the topic with kafka-configs.sh or your cluster's console)", err)
	}
	return info, nil
}

// newCodec returns the codec of the embedded schemas, with ids from the
// configured schema registry when there is one.
func newCodec(ctx context.Context, cfg *config) (*schemas.Codec, error) {
	reg, err := schemas.Embedded()
	if err != nil {
		return nil, err
	}
	if cfg.SchemaRegistryURL != "" {
		if reg, err = reg.Sync(ctx, cfg.SchemaRegistryURL); err != nil {
			return nil, err
		}
	}
	return schemas.NewCodec(reg), nil
}
