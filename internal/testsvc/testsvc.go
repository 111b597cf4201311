// Package testsvc connects integration tests to the real Postgres, Redis and
// RabbitMQ of the machine. A missing service fails the test with the address
// and the command that starts it: integration tests never skip silently
// (go test -short is the way to leave them out).
package testsvc

import (
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"
)

// Default addresses, as in the README's configuration table.
const (
	PostgresURL = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
	RedisAddr   = "127.0.0.1:6379"
	RabbitURL   = "amqp://guest:guest@127.0.0.1:5672/" //nolint:gosec // G101: RabbitMQ's local default account of the test machine
)

var howToStart = map[string]string{
	"Postgres": "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start",
	"Redis":    `redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no`,
	"RabbitMQ": "rabbitmq-server -detached",
}

// Integration skips t under go test -short and otherwise does nothing: the
// one place the fast inner loop is decided.
func Integration(t testing.TB) {
	t.Helper()
	if testing.Short() {
		t.Skip("integration test; run without -short")
	}
}

func reachable(t testing.TB, name, addr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	c, err := (&net.Dialer{}).DialContext(ctx, "tcp", addr)
	if err != nil {
		t.Fatalf("%s is not reachable at %s (%v); start it with: %s", name, addr, err, howToStart[name])
	}
	_ = c.Close()
}

// Postgres creates a fresh database for t, drops it when t ends, and returns
// its URL.
func Postgres(t testing.TB) string {
	t.Helper()
	Integration(t)
	reachable(t, "Postgres", "127.0.0.1:5432")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	admin, err := pgx.Connect(ctx, PostgresURL)
	if err != nil {
		t.Fatalf("connect Postgres: %v", err)
	}
	defer admin.Close(context.Background())
	name := fmt.Sprintf("rtstack_test_%d", time.Now().UnixNano())
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("create database %s: %v", name, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		c, err := pgx.Connect(ctx, PostgresURL)
		if err != nil {
			return
		}
		defer c.Close(ctx)
		_, _ = c.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
	})
	return strings.Replace(PostgresURL, "/postgres?", "/"+name+"?", 1)
}

// Redis returns a client of the real Redis and a key prefix unique to t;
// keys under the prefix are deleted when t ends. Tests never FLUSHDB: other
// packages' tests share the server.
func Redis(t testing.TB) (*redis.Client, string) {
	t.Helper()
	Integration(t)
	reachable(t, "Redis", RedisAddr)
	rdb := redis.NewClient(&redis.Options{Addr: RedisAddr})
	prefix := fmt.Sprintf("test%d:", time.Now().UnixNano())
	t.Cleanup(func() {
		ctx := context.Background()
		iter := rdb.Scan(ctx, 0, prefix+"*", 1000).Iterator()
		for iter.Next(ctx) {
			rdb.Del(ctx, iter.Val())
		}
		_ = rdb.Close()
	})
	return rdb, prefix
}

// Rabbit checks RabbitMQ is reachable and returns its URL. Tests name their
// queues and exchanges with a prefix of their own and delete them.
func Rabbit(t testing.TB) string {
	t.Helper()
	Integration(t)
	reachable(t, "RabbitMQ", "127.0.0.1:5672")
	return RabbitURL
}
