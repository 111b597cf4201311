package main

import (
	"log/slog"
	"net/url"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/rtstack/rtstack/infra/kafka"
)

func newKafkaClient(cfg *config, log *slog.Logger, opts ...kgo.Opt) (*kgo.Client, error) {
	return kafka.NewClient(cfg.kafkaConfig(log), opts...)
}

// redactURL hides a password in a URL before it is logged.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Redacted()
}
