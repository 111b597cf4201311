package gateway_test

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/rtstack/rtstack/gateway/auth"
)

// The test binary doubles as the idle clients' process (BenchmarkIdle
// Connections): with idleURLEnv set it dials instead of running tests, so
// the clients' memory is not the server's.
const (
	idleURLEnv   = "RTSTACK_IDLE_URL"   // the gateway's ws://…/ws URL, without token
	idleConnsEnv = "RTSTACK_IDLE_CONNS" // how many connections (default 10,000)
	idleRoomsEnv = "RTSTACK_IDLE_ROOMS" // spread over how many rooms (default 100)
	// idleHeapEnv names a file for a heap profile of the server holding the
	// idle connections (go test's -memprofile is written after they closed).
	idleHeapEnv = "RTSTACK_IDLE_HEAPPROFILE"
	idleSecret  = "test-secret" // newStack's
)

func TestMain(m *testing.M) {
	if url := os.Getenv(idleURLEnv); url != "" {
		os.Exit(runIdleClients(url, envInt(idleConnsEnv, 10000), envInt(idleRoomsEnv, 100)))
	}
	os.Exit(m.Run())
}

func envInt(name string, def int) int {
	if n, err := strconv.Atoi(os.Getenv(name)); err == nil && n > 0 {
		return n
	}
	return def
}

// raiseFileLimit lifts the soft open-files limit to the hard one and
// reports whether need descriptors fit.
func raiseFileLimit(need int) error {
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		return err
	}
	if l.Cur < l.Max {
		l.Cur = l.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
			return err
		}
	}
	if l.Cur < uint64(need) {
		return fmt.Errorf("open files limit %d, need %d (raise the hard limit: ulimit -Hn)", l.Cur, need)
	}
	return nil
}

// runIdleClients is the clients' process: it opens n connections, each a
// user of its own joined to one of rooms rooms, prints "joined" once every
// join is acknowledged, reads (and drops) whatever the server sends, and
// exits when its stdin closes.
func runIdleClients(url string, n, rooms int) int {
	fail := func(err error) int { fmt.Fprintln(os.Stderr, "idle clients:", err); return 1 }
	if err := raiseFileLimit(n + 100); err != nil {
		return fail(err)
	}
	keys, err := auth.NewKeys(idleSecret)
	if err != nil {
		return fail(err)
	}
	d := &websocket.Dialer{ReadBufferSize: 1024, WriteBufferSize: 1024, HandshakeTimeout: time.Minute}
	var (
		next  atomic.Int64
		errMu sync.Mutex
		first error
		wg    sync.WaitGroup
		conns = make([]*websocket.Conn, n)
	)
	for range 32 { // dialers in parallel: the joins' appends overlap
		wg.Go(func() {
			for i := int(next.Add(1)) - 1; i < n; i = int(next.Add(1)) - 1 {
				ws, err := dialIdle(d, keys, url, i, rooms)
				if err != nil {
					errMu.Lock()
					first = cmpErr(first, err)
					errMu.Unlock()
					return
				}
				conns[i] = ws
				go func() { // the other members' joined frames keep coming for a while
					for {
						if _, _, err := ws.NextReader(); err != nil {
							return
						}
					}
				}()
			}
		})
	}
	wg.Wait()
	if first != nil {
		return fail(first)
	}
	fmt.Println("joined")
	_, _ = io.Copy(io.Discard, os.Stdin)
	for _, ws := range conns {
		_ = ws.Close()
	}
	return 0
}

func cmpErr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

// dialIdle opens connection i and joins its room, waiting for the ack.
func dialIdle(d *websocket.Dialer, keys *auth.Keys, url string, i, rooms int) (*websocket.Conn, error) {
	tok, err := keys.Sign(fmt.Sprint("idle", i), "", false, time.Hour)
	if err != nil {
		return nil, err
	}
	ws, _, err := d.Dial(url+"?token="+tok, nil)
	if err != nil {
		return nil, fmt.Errorf("dial %d: %w", i, err)
	}
	join := fmt.Appendf(nil, `{"type":"join","room":"idle-%d","client_id":"j"}`, i%rooms)
	if err := ws.WriteMessage(websocket.TextMessage, join); err != nil {
		return nil, fmt.Errorf("join %d: %w", i, err)
	}
	for {
		_, data, err := ws.ReadMessage()
		if err != nil {
			return nil, fmt.Errorf("join %d: %w", i, err)
		}
		if bytes.Contains(data, []byte(`"type":"error"`)) {
			return nil, fmt.Errorf("join %d: %s", i, data)
		}
		if bytes.Contains(data, []byte(`"type":"ack","client_id":"j"`)) {
			return ws, nil
		}
	}
}

// footprint is the process's memory after a full collection.
type footprint struct {
	rss, heap, stacks uint64
	goroutines        int
}

func measureFootprint(b *testing.B) footprint {
	// Each collection halves the stacks of goroutines that use under a
	// quarter of theirs (readers grew theirs handling the join); the last
	// hands freed pages back to the OS, so RSS is what is live.
	for range 3 {
		runtime.GC()
	}
	debug.FreeOSMemory()
	s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}, {Name: "/memory/classes/heap/stacks:bytes"}}
	metrics.Read(s)
	return footprint{rss: vmRSS(b), heap: s[0].Value.Uint64(), stacks: s[1].Value.Uint64(), goroutines: runtime.NumGoroutine()}
}

func vmRSS(b *testing.B) uint64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		b.Fatal(err)
	}
	for line := range strings.SplitSeq(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				b.Fatal(err)
			}
			return kb << 10
		}
	}
	b.Fatal("no VmRSS in /proc/self/status")
	return 0
}

// BenchmarkIdleConnections measures what an idle connection costs the
// gateway: RSS, live heap, goroutine stacks and goroutines per connection,
// with RTSTACK_IDLE_CONNS (default 10,000) connections joined to one of 100
// rooms, opened by a child process. It runs once whatever b.N
// (-benchtime 1x).
func BenchmarkIdleConnections(b *testing.B) {
	n := envInt(idleConnsEnv, 10000)
	if err := raiseFileLimit(n + 1000); err != nil {
		b.Fatal(err)
	}
	st := newStack(b, stackOpts{})
	g := st.gateway(b, nil)
	g.dial(b, "warm").join("warm") // the log tail is running: its buffers are in the base
	base := measureFootprint(b)

	child := exec.Command(os.Args[0], "-test.run=^$")
	child.Env = append(os.Environ(),
		idleURLEnv+"="+strings.TrimSuffix(g.url(""), "?token="),
		idleConnsEnv+"="+strconv.Itoa(n))
	child.Stderr = os.Stderr
	stdin, err := child.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	stdout, err := child.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	if err := child.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() {
		_ = stdin.Close()
		if err := child.Wait(); err != nil {
			b.Errorf("idle clients: %v", err)
		}
	}()
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || line != "joined\n" {
		b.Fatalf("idle clients: %q, %v", line, err)
	}
	b.Logf("%d connections joined in %v", n, time.Since(start).Round(time.Millisecond))

	// The joins' fanout (every member sees the others join) drains; the
	// figures settle once it has.
	var idle footprint
	for prev, tries := measureFootprint(b), 0; ; prev, tries = idle, tries+1 {
		time.Sleep(time.Second)
		idle = measureFootprint(b)
		if idle.rss <= prev.rss+prev.rss/100 || tries > 30 {
			break
		}
	}
	if path := os.Getenv(idleHeapEnv); path != "" {
		writeHeapProfile(b, path)
	}
	per := func(a, z uint64) float64 { return float64(int64(z)-int64(a)) / float64(n) / 1024 }
	b.ReportMetric(per(base.rss, idle.rss), "rss-KiB/conn")
	b.ReportMetric(per(base.heap, idle.heap), "heap-KiB/conn")
	b.ReportMetric(per(base.stacks, idle.stacks), "stack-KiB/conn")
	b.ReportMetric(float64(idle.goroutines-base.goroutines)/float64(n), "goroutines/conn")
}

func writeHeapProfile(b *testing.B, path string) {
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	if err := pprof.Lookup("heap").WriteTo(f, 0); err != nil {
		b.Fatal(err)
	}
}
