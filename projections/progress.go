package projections

import (
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/schollz/progressbar/v3"
)

// Progress reports a rebuild's progress to a person: a bar with events
// done, events/s and ETA on a terminal, a plain line at most every few
// seconds otherwise (logs, CI). Update is RebuildConfig.Progress. It is safe
// for concurrent use.
type Progress struct {
	mu    sync.Mutex // guards everything below
	w     io.Writer
	bar   *progressbar.ProgressBar // nil unless on a terminal
	max   int64
	start time.Time
	last  time.Time
	done  int64
	every time.Duration
}

// NewProgress writes to w; isTTY selects the bar (e.g.
// term.IsTerminal(int(os.Stdout.Fd())) in cmd/).
func NewProgress(w io.Writer, isTTY bool) *Progress {
	p := &Progress{w: w, start: time.Now(), every: 2 * time.Second}
	if isTTY {
		p.bar = progressbar.NewOptions64(-1,
			progressbar.OptionSetWriter(w),
			progressbar.OptionSetDescription("replaying"),
			progressbar.OptionShowCount(),
			progressbar.OptionShowIts(),
			progressbar.OptionSetItsString("events"),
			progressbar.OptionSetPredictTime(true),
			progressbar.OptionThrottle(100*time.Millisecond),
			progressbar.OptionFullWidth(),
		)
	}
	return p
}

// Update records done of total events.
func (p *Progress) Update(done, total int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.done = done
	if p.bar != nil {
		if total != p.max {
			p.max = total
			p.bar.ChangeMax64(total)
		}
		_ = p.bar.Set64(done)
		return
	}
	p.max = total
	if now := time.Now(); now.Sub(p.last) >= p.every {
		p.last = now
		p.line(now)
	}
}

// Finish completes the bar, or writes the final line.
func (p *Progress) Finish() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.bar != nil {
		_ = p.bar.Finish()
		fmt.Fprintln(p.w)
		return
	}
	p.line(time.Now())
}

func (p *Progress) line(now time.Time) {
	el := now.Sub(p.start).Seconds()
	rate := 0.0
	if el > 0 {
		rate = float64(p.done) / el
	}
	pct := 100.0
	if p.max > 0 {
		pct = 100 * float64(p.done) / float64(p.max)
	}
	eta := "?"
	if rate > 0 && p.max >= p.done {
		eta = time.Duration(float64(p.max-p.done) / rate * float64(time.Second)).Round(time.Second).String()
	}
	fmt.Fprintf(p.w, "rebuild: %d/%d events (%.1f%%), %.0f events/s, eta %s\n", p.done, p.max, pct, rate, eta)
}
