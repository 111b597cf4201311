package worker

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/rtstack/rtstack/internal/testsvc"
)

// fakeChannel models a consumer channel as RabbitMQ settles it: an ack or
// nack of a tag that is not outstanding is an error (RabbitMQ closes the
// channel: "unknown delivery tag"), a multiple ack settles every
// outstanding tag up to its own. It also fails a settle of a tag whose
// handler has not finished.
type fakeChannel struct {
	mu       sync.Mutex // guards every field
	state    map[uint64]string
	finished map[uint64]bool
	frames   []string
	errs     []string
}

func newFakeChannel(n int) *fakeChannel {
	f := &fakeChannel{state: map[uint64]string{}, finished: map[uint64]bool{}}
	for tag := range uint64(n) {
		f.state[tag+1] = "outstanding"
	}
	return f
}

func (f *fakeChannel) settleLocked(tag uint64, as string) {
	if f.state[tag] != "outstanding" {
		f.errs = append(f.errs, fmt.Sprintf("%s of tag %d, which is %q: unknown delivery tag", as, tag, f.state[tag]))
		return
	}
	if !f.finished[tag] {
		f.errs = append(f.errs, fmt.Sprintf("%s of tag %d while its handler runs", as, tag))
	}
	f.state[tag] = as
}

func (f *fakeChannel) Ack(tag uint64, multiple bool) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.frames = append(f.frames, fmt.Sprintf("ack %d multiple=%v", tag, multiple))
	f.settleLocked(tag, "acked")
	if multiple {
		for t := uint64(1); t < tag; t++ {
			if f.state[t] == "outstanding" {
				f.settleLocked(t, "acked")
			}
		}
	}
	return nil
}

func (f *fakeChannel) Nack(tag uint64, multiple, requeue bool) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.frames = append(f.frames, fmt.Sprintf("nack %d requeue=%v", tag, requeue))
	if multiple {
		f.errs = append(f.errs, "a multiple nack")
	}
	as := "rejected"
	if requeue {
		as = "requeued"
	}
	f.settleLocked(tag, as)
	return nil
}

// finish marks tag's handler done and reports s, as session does.
func (f *fakeChannel) finish(a *acker, tag uint64, s settlement) {
	f.mu.Lock()
	f.finished[tag] = true
	f.mu.Unlock()
	a.settle(tag, s)
}

func (f *fakeChannel) snapshot() (state map[uint64]string, frames, errs []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	state = make(map[uint64]string, len(f.state))
	for k, v := range f.state {
		state[k] = v
	}
	return state, append([]string(nil), f.frames...), append([]string(nil), f.errs...)
}

func (f *fakeChannel) settled(tags ...uint64) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, t := range tags {
		if f.state[t] == "outstanding" {
			return false
		}
	}
	return true
}

const noHold = time.Hour // no straggler is acked alone during the test

// TestAckerMultipleAckWaitsForThePrefix: acks of tags after one still in
// progress are held; once it finishes one frame acks them all.
func TestAckerMultipleAckWaitsForThePrefix(t *testing.T) {
	f := newFakeChannel(10)
	a := newAcker(f, 10, noHold)
	for tag := uint64(2); tag <= 10; tag++ {
		f.finish(a, tag, settleAck)
	}
	f.finish(a, 1, settleAck)
	testsvc.Eventually(t, 5*time.Second, "every tag settled", func() bool { return f.settled(1, 2, 3, 4, 5, 6, 7, 8, 9, 10) })
	a.close()
	state, frames, errs := f.snapshot()
	if len(errs) != 0 {
		t.Errorf("protocol errors: %v", errs)
	}
	if len(frames) != 1 || frames[0] != "ack 10 multiple=true" {
		t.Errorf("frames %v, want one multiple ack of tag 10", frames)
	}
	for tag, s := range state {
		if s != "acked" {
			t.Errorf("tag %d %s, want acked", tag, s)
		}
	}
}

// TestAckerNacksInARunAreNotSwallowed: a reject and a requeue amid acks
// reach RabbitMQ as such, whatever order the handlers finish in.
func TestAckerNacksInARunAreNotSwallowed(t *testing.T) {
	want := map[uint64]string{5: "rejected", 7: "requeued", 8: "rejected"}
	outcome := func(tag uint64) settlement {
		switch want[tag] {
		case "rejected":
			return settleReject
		case "requeued":
			return settleRequeue
		}
		return settleAck
	}
	for _, order := range [][]uint64{
		{1, 2, 3, 4, 5, 6, 7, 8, 9, 10},
		{10, 9, 8, 7, 6, 5, 4, 3, 2, 1},
		{2, 5, 3, 8, 9, 7, 10, 4, 6, 1},
		{5, 1, 2, 3, 4, 7, 8, 6, 10, 9},
	} {
		t.Run(fmt.Sprint(order), func(t *testing.T) {
			f := newFakeChannel(10)
			a := newAcker(f, 10, noHold)
			for _, tag := range order {
				f.finish(a, tag, outcome(tag))
			}
			a.close()
			state, frames, errs := f.snapshot()
			if len(errs) != 0 {
				t.Errorf("protocol errors: %v (frames %v)", errs, frames)
			}
			for tag := uint64(1); tag <= 10; tag++ {
				w := want[tag]
				if w == "" {
					w = "acked"
				}
				if state[tag] != w {
					t.Errorf("tag %d %s, want %s (frames %v)", tag, state[tag], w, frames)
				}
			}
		})
	}
}

// TestAckerOnlyNacks: a finished prefix with no ack in it sends no ack
// (an ack of a tag already settled would close the channel).
func TestAckerOnlyNacks(t *testing.T) {
	f := newFakeChannel(2)
	a := newAcker(f, 2, noHold)
	f.finish(a, 1, settleReject)
	f.finish(a, 2, settleRequeue)
	a.close()
	_, frames, errs := f.snapshot()
	if len(errs) != 0 || len(frames) != 2 {
		t.Errorf("frames %v, errors %v: want the two nacks alone", frames, errs)
	}
}

// TestAckerStragglersAckedAlone: tasks finished behind one in progress are
// acked one by one after the hold, so a slow webhook does not hold back
// the prefetch window; the slow one is acked when it finishes.
func TestAckerStragglersAckedAlone(t *testing.T) {
	f := newFakeChannel(4)
	a := newAcker(f, 4, 10*time.Millisecond)
	for tag := uint64(2); tag <= 4; tag++ {
		f.finish(a, tag, settleAck)
	}
	testsvc.Eventually(t, 5*time.Second, "the finished tags acked", func() bool { return f.settled(2, 3, 4) })
	if f.settled(1) {
		t.Fatal("tag 1 settled while its handler runs")
	}
	f.finish(a, 1, settleAck)
	a.close()
	state, frames, errs := f.snapshot()
	if len(errs) != 0 {
		t.Errorf("protocol errors: %v (frames %v)", errs, frames)
	}
	for tag, s := range state {
		if s != "acked" {
			t.Errorf("tag %d %s, want acked (frames %v)", tag, s, frames)
		}
	}
}
