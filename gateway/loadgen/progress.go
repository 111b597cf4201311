package loadgen

import (
	"fmt"
	"sync"
	"time"
)

// progress prints a line per interval until the returned stop is called: in
// place on a terminal, one line each otherwise.
func (r *run) progress(start time.Time) (stop func()) {
	w := r.cfg.Progress
	if w == nil {
		return func() {}
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		tick := time.NewTicker(r.cfg.ProgressInterval)
		defer tick.Stop()
		prev, prevAt := r.counts.snapshot(), start
		for {
			select {
			case <-done:
				if r.cfg.ProgressTTY {
					fmt.Fprintln(w)
				}
				return
			case now := <-tick.C:
				s := r.counts.snapshot()
				dt := now.Sub(prevAt).Seconds()
				line := fmt.Sprintf("%5.0fs  sent %8s/s  acked %8s/s  delivered %8s/s  errors %d  disconnects %d",
					now.Sub(start).Seconds(), si(float64(s.sent-prev.sent)/dt), si(float64(s.acked-prev.acked)/dt),
					si(float64(s.delivered-prev.delivered)/dt), s.errors, s.disconnects)
				if r.cfg.ProgressTTY {
					fmt.Fprintf(w, "\r%s\x1b[K", line)
				} else {
					fmt.Fprintln(w, line)
				}
				prev, prevAt = s, now
			}
		}
	})
	return func() {
		close(done)
		wg.Wait()
	}
}
