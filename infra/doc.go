// Package infra holds the technology shared by several roles; its
// subpackages are the adapters (kafka: client set-up, the embedded broker, the
// log appender, tailer and reader; prom: what every component's metrics
// share) and the deployment files (docker-compose.yml for a
// real Kafka in KRaft mode, a schema registry, Postgres, Redis, RabbitMQ).
//
// infra imports events and schemas only; domain packages never import infra.
package infra
