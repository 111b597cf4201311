package testsvc

import (
	"os"
	"runtime/pprof"
	"syscall"
	"testing"
	"time"
)

// ProcessCPU is the user and system CPU time this process has used so far
// (a child's is not included): benchmarks report CPU per unit of work, which
// a shared machine moves far less than it moves rates.
func ProcessCPU(tb testing.TB) time.Duration {
	tb.Helper()
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// CPUProfile starts a CPU profile of this process into path; the returned
// func stops it. For a benchmark whose baseline runs in the same process,
// started around rtstack's side only, where -cpuprofile would mix the two.
func CPUProfile(tb testing.TB, path string) (stop func()) {
	tb.Helper()
	f, err := os.Create(path) //nolint:gosec // G304: a profile path the benchmark was given
	if err != nil {
		tb.Fatal(err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		tb.Fatal(err)
	}
	return func() {
		pprof.StopCPUProfile()
		_ = f.Close()
	}
}
