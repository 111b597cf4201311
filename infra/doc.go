// Package infra holds the technology shared by several roles; its
// subpackages are the adapters (kafka: client set-up, the embedded broker, the
// log appender, tailer and reader; prom: what the metrics share). Beside them are the
// deployment files: docker-compose.yml (a 3-broker KRaft Kafka cluster, a
// schema registry, Postgres, Redis, RabbitMQ, rtstack as separate processes,
// Prometheus and Grafana), the Dockerfile of the rtstack image, and the
// Prometheus scrape config, alert rules and Grafana dashboard under
// prometheus/ and grafana/. The tests of this package check those files by
// parsing them; no Docker engine is needed.
//
// infra imports events and schemas only; domain packages never import infra.
package infra
