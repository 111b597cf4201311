package testsvc

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// FreeAddr returns a loopback address nothing listens on, for a process
// under test to listen on.
func FreeAddr(t testing.TB) string {
	t.Helper()
	l, err := (&net.ListenConfig{}).Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// RunWithBinary is a TestMain for tests that run a binary: it builds the
// main package pkg (as go build names it; the file is named rtstack) with
// extra go build flags into a
// temporary directory, sets *path to it, runs the tests, removes the
// directory and exits with the tests' code.
func RunWithBinary(m *testing.M, pkg string, path *string, flags ...string) {
	dir, err := os.MkdirTemp("", "rtstack-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	*path = filepath.Join(dir, "rtstack")
	args := append(append([]string{"build"}, flags...), "-o", *path, pkg)
	//nolint:gosec // G204: the arguments are the calling test's own package and flags
	if out, err := exec.CommandContext(context.Background(), "go", args...).CombinedOutput(); err != nil {
		_ = os.RemoveAll(dir)
		fmt.Fprintf(os.Stderr, "go build %s: %v\n%s", pkg, err, out)
		os.Exit(1)
	}
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// DeleteQueues removes the RabbitMQ queues whose names start with prefix
// (best effort, through rabbitmqctl), so a test's queues do not pile up.
func DeleteQueues(prefix string) {
	ctx := context.Background()
	out, err := exec.CommandContext(ctx, "rabbitmqctl", "list_queues", "-q", "name").Output()
	if err != nil {
		return
	}
	for _, q := range strings.Fields(string(out)) {
		if strings.HasPrefix(q, prefix) {
			_ = exec.CommandContext(ctx, "rabbitmqctl", "delete_queue", q).Run() //nolint:gosec // G204: a queue name rabbitmqctl itself listed
		}
	}
}
