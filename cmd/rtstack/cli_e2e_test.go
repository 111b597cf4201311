package main

import (
	"bytes"
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/rtstack/rtstack/internal/testsvc"
)

// cliResult is what one run of the binary left behind.
type cliResult struct {
	code           int
	stdout, stderr string
}

// runCLI runs the built binary to completion with env added to the
// environment, as a user at a shell would.
func runCLI(t *testing.T, env []string, args ...string) cliResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, binPath, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Dir = t.TempDir() // a fresh directory: nothing of an earlier run (./data) is found
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	code := 0
	switch {
	case errors.As(err, &exit):
		code = exit.ExitCode()
	case err != nil:
		t.Fatalf("rtstack %v: %v", args, err)
	}
	return cliResult{code: code, stdout: stdout.String(), stderr: stderr.String()}
}

// Help is asked for in every way a newcomer tries; it goes to stdout with
// exit 0. No command or an unknown one is named first on stderr, with the
// usage after it, and exits 2.
func TestCLIHelpAndUnknownCommands(t *testing.T) {
	for _, tc := range []struct {
		name       string
		args       []string
		code       int
		stdout     string // a part of stdout; "" means stdout must be empty
		stderrHead string // how stderr starts; "" means stderr must be empty
	}{
		{"root -h", []string{"-h"}, 0, "SUBCOMMANDS", ""},
		{"root --help", []string{"--help"}, 0, "SUBCOMMANDS", ""},
		{"subcommand -h", []string{"dev", "-h"}, 0, "rtstack dev", ""},
		{"nested -h", []string{"log", "dump", "-h"}, 0, "rtstack log dump", ""},
		{"help", []string{"help"}, 0, "SUBCOMMANDS", ""},
		{"help command", []string{"help", "dev"}, 0, "-broker-addr", ""},
		{"help nested command", []string{"help", "log", "dump"}, 0, "-room", ""},
		{"unknown command", []string{"chat"}, 2, "", "rtstack: unknown command \"chat\"\n"},
		{"help for an unknown command", []string{"help", "chat"}, 2, "", "rtstack: unknown command \"chat\"\n"},
		{"unknown subcommand of a group", []string{"log", "chat"}, 2, "", "rtstack log: unknown command \"chat\"\n"},
		{"no command", nil, 2, "", "USAGE\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := runCLI(t, nil, tc.args...)
			if r.code != tc.code {
				t.Errorf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", r.code, tc.code, r.stdout, r.stderr)
			}
			if tc.stdout == "" && r.stdout != "" {
				t.Errorf("stdout should be empty, got:\n%s", r.stdout)
			}
			if !strings.Contains(r.stdout, tc.stdout) {
				t.Errorf("stdout lacks %q:\n%s", tc.stdout, r.stdout)
			}
			if tc.stderrHead == "" && r.stderr != "" {
				t.Errorf("stderr should be empty, got:\n%s", r.stderr)
			}
			if !strings.HasPrefix(r.stderr, tc.stderrHead) {
				t.Errorf("stderr should start with %q, got:\n%s", tc.stderrHead, r.stderr)
			}
			if tc.code == 2 && !strings.Contains(r.stderr, "USAGE") {
				t.Errorf("stderr lacks the usage after the error:\n%s", r.stderr)
			}
		})
	}
}

// A flag error is the error and a one-line hint, not the whole flag list,
// and exits 1.
func TestCLIFlagErrorIsShort(t *testing.T) {
	for _, tc := range []struct {
		args []string
		hint string
	}{
		{[]string{"dev", "--bogus"}, "run 'rtstack dev -h' for usage"},
		{[]string{"log", "dump", "--bogus"}, "run 'rtstack log dump -h' for usage"},
		{[]string{"token", "--ttl", "soon"}, "run 'rtstack token -h' for usage"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			r := runCLI(t, nil, tc.args...)
			if r.code != 1 {
				t.Errorf("exit %d, want 1", r.code)
			}
			lines := strings.Split(strings.TrimRight(r.stderr, "\n"), "\n")
			if len(lines) != 2 || lines[1] != tc.hint {
				t.Fatalf("stderr should be the error then %q, got:\n%s", tc.hint, r.stderr)
			}
			if bad := tc.args[len(tc.args)-1]; !strings.Contains(lines[0], strings.TrimLeft(bad, "-")) {
				t.Errorf("the error does not name %q: %s", bad, lines[0])
			}
			if r.stdout != "" {
				t.Errorf("stdout should be empty, got:\n%s", r.stdout)
			}
		})
	}
}

// Settings that would do something the user did not mean are refused
// before anything starts, each naming the setting: an expired token, a
// prefix glued onto names without its separator, a delay that is not one.
func TestCLIRefusesBadSettings(t *testing.T) {
	for _, tc := range []struct {
		name string
		env  []string
		args []string
		want string
	}{
		{"negative ttl", nil, []string{"token", "--user", "alice", "--ttl", "-1m"}, "--ttl must be positive"},
		{"zero ttl", nil, []string{"token", "--user", "alice", "--ttl", "0"}, "--ttl must be positive"},
		{"rabbit prefix without its dot", []string{"RABBIT_PREFIX=myapp"}, []string{"dlq", "list"}, `RABBIT_PREFIX "myapp" must end with "."`},
		{"redis prefix without its colon", []string{"REDIS_PREFIX=myapp"}, []string{"digest", "redis"}, `REDIS_PREFIX "myapp" must end with ":"`},
		{"retry delay of zero", []string{"RETRY_DELAYS=1s,0s"}, []string{"dlq", "list"}, "RETRY_DELAYS"},
		{"unknown log level", []string{"LOG_LEVEL=loud"}, []string{"broker"}, `LOG_LEVEL: "loud"`},
		{"open broker", []string{"BROKER_ADDR=0.0.0.0:0"}, []string{"broker"}, "set KAFKA_SASL_USER and KAFKA_SASL_PASSWORD"},
		{"open dev broker", []string{"BROKER_ADDR=:0"}, []string{"dev"}, "BROKER_ADDR :0 is reachable from other machines"},
		{"PLAIN on the embedded broker", []string{"KAFKA_SASL_MECHANISM=PLAIN", "KAFKA_SASL_USER=u", "KAFKA_SASL_PASSWORD=p"}, []string{"broker"}, "SASL PLAIN is not offered"},
		{"user without password", []string{"KAFKA_SASL_USER=u"}, []string{"dlq", "list"}, "KAFKA_SASL_*"},
		{"unknown compression", []string{"KAFKA_COMPRESSION=brotli"}, []string{"dlq", "list"}, `compression "brotli"`},
		{"TLS to the embedded broker", []string{"KAFKA_TLS=true"}, []string{"log", "dump"}, "the embedded broker does not serve TLS"},
		{"TLS file without TLS", []string{"KAFKA_BROKERS=b:9092", "KAFKA_TLS_CA=/etc/hostname"}, []string{"log", "dump"}, "TLS files are set but TLS is off"},
		{"no connection allowed", []string{"USER_CONN_LIMIT=0"}, []string{"broker"}, "USER_CONN_LIMIT must be at least 1"},
		{"negative rate", []string{"RATE_LIMIT=-5"}, []string{"broker"}, "RATE_LIMIT must be at least 0"},
		{"worker prefetch of zero", []string{"WORKER_PREFETCH=0"}, []string{"broker"}, "WORKER_PREFETCH must be within 1..1000, not 0"},
		{"worker prefetch above the bound", []string{"WORKER_PREFETCH=1001"}, []string{"broker"}, "WORKER_PREFETCH must be within 1..1000, not 1001"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := runCLI(t, tc.env, tc.args...)
			if r.code != 1 || !strings.Contains(r.stderr, tc.want) {
				t.Fatalf("exit %d, want 1 with %q on stderr; stderr:\n%s", r.code, tc.want, r.stderr)
			}
			if r.stdout != "" {
				t.Errorf("nothing should be printed on stdout, got:\n%s", r.stdout)
			}
		})
	}
}

// A service that is down is named at the address configured, and the
// command that starts it listens on that port, not on the default one.
func TestCLIServiceDownHintUsesConfiguredPort(t *testing.T) {
	pg, rd, mq := freePort(t), freePort(t), freePort(t)
	r := runCLI(t, []string{
		"POSTGRES_URL=postgres://postgres@127.0.0.1:" + pg + "/rtstack?sslmode=disable",
		"REDIS_URL=redis://127.0.0.1:" + rd + "/0",
		"RABBIT_URL=amqp://guest:guest@127.0.0.1:" + mq + "/",
		"BROKER_ADDR=" + testsvc.FreeAddr(t),
		"HTTP_ADDR=" + testsvc.FreeAddr(t),
	}, "dev")
	if r.code != 1 {
		t.Errorf("exit %d, want 1", r.code)
	}
	for _, want := range []string{
		"Postgres is not reachable at 127.0.0.1:" + pg,
		`-o "-p ` + pg + `"`,
		"Redis is not reachable at 127.0.0.1:" + rd,
		"--port " + rd + " ",
		"RabbitMQ is not reachable at 127.0.0.1:" + mq,
		"RABBITMQ_NODE_PORT=" + mq + " rabbitmq-server",
	} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, r.stderr)
		}
	}
}

// The flags show the defaults the components use: RETRY_DELAYS as the
// README writes it, from tasks.DefaultRetryDelays.
func TestCLIHelpShowsComponentDefaults(t *testing.T) {
	r := runCLI(t, nil, "dev", "-h")
	for _, want := range []string{"-retry-delays 1s,10s,60s", "-topic chat.events", "-partitions 6", "-rabbit-prefix rtstack.", "-redis-prefix rtstack:"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("dev -h lacks %q:\n%s", want, r.stdout)
		}
	}
}

// freePort returns a loopback port nothing listens on.
func freePort(t *testing.T) string {
	t.Helper()
	_, port, err := net.SplitHostPort(testsvc.FreeAddr(t))
	if err != nil {
		t.Fatal(err)
	}
	return port
}
