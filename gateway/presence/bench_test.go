package presence_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/rtstack/rtstack/gateway/presence"
)

// BenchmarkJoinLeave measures a Join and a Leave of one connection against
// the baseline of two plain Redis round trips (SET, DEL) in the same run:
// x_baseline is how many times the atomic, announcing scripts cost.
func BenchmarkJoinLeave(b *testing.B) {
	rdb, prefix := setup(b)
	ctx := context.Background()
	tr, err := presence.New(presence.Config{Redis: rdb, Prefix: prefix, GatewayID: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	for i := range b.N {
		k := prefix + "base:" + strconv.Itoa(i%64)
		if err := rdb.Set(ctx, k, "x", time.Minute).Err(); err != nil {
			b.Fatal(err)
		}
		if err := rdb.Del(ctx, k).Err(); err != nil {
			b.Fatal(err)
		}
	}
	base := time.Since(start)
	b.ResetTimer()
	for i := range b.N {
		room, conn := "r"+strconv.Itoa(i%8), "c"+strconv.Itoa(i%64)
		if err := tr.Join(ctx, room, "u"+strconv.Itoa(i%16), conn); err != nil {
			b.Fatal(err)
		}
		if err := tr.Leave(ctx, room, "u"+strconv.Itoa(i%16), conn); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	ours := b.Elapsed()
	b.ReportMetric(float64(base.Nanoseconds())/float64(b.N), "baseline_ns/op")
	b.ReportMetric(float64(ours)/float64(base), "x_baseline")
}
