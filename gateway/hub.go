package gateway

import (
	"bytes"
	"sync"

	"github.com/rtstack/rtstack/infra/kafka"
	"github.com/rtstack/rtstack/projections/view"
)

// delivery is one log record ready for fanout: its frame is encoded once and
// shared by every recipient.
type delivery struct {
	room      string
	partition int32
	offset    int64
	messageID string // MessageSent only, for duplicate suppression
	frame     []byte // nil: not shown to clients, only advances the position
}

// sub is one connection's subscription to one room.
type sub struct {
	c *conn
	// last is the offset of the newest record delivered (or known to the
	// client, from its since): fanout sends only records after it, so a
	// position is never delivered twice.
	last int64
	// recovering: live records are buffered in buf while the connection's
	// reader replays the log; overflow means buf hit its bound and the
	// client must resync.
	recovering bool
	buf        []delivery
	bufBytes   int
	overflow   bool
	// leaveAt is the offset of the connection's own MemberLeft: the
	// subscription ends once it is delivered (-1: not leaving).
	leaveAt int64
}

// room is a room's local subscribers.
type room struct {
	subs map[*conn]*sub
}

// recentIDs remembers the first offset of the last n message ids of a room,
// so a message appended twice (a resend after an unknown outcome) is
// delivered once. Not to be confused with gateway/dedupe, which remembers
// command outcomes across gateways.
type recentIDs struct {
	first map[string]int64
	ring  []string
	pos   int
}

func (d *recentIDs) seen(id string, off int64, n int) (dup bool) {
	if first, ok := d.first[id]; ok {
		return first < off
	}
	if len(d.ring) < n {
		d.ring = append(d.ring, id)
	} else {
		delete(d.first, d.ring[d.pos])
		d.ring[d.pos] = id
		d.pos = (d.pos + 1) % n
	}
	d.first[id] = off
	return false
}

// maxDedupeRooms bounds how many rooms' message ids are remembered.
const maxDedupeRooms = 2048

// hub holds the rooms, the tail's position and the board subscriptions. The
// tail is its only writer of positions; joins and leaves change rooms.
type hub struct {
	dedupeWindow int
	bufCap       int // frames a recovering subscription may buffer
	bufBytes     int // and their bytes

	mu     sync.Mutex       // guards every field below
	rooms  map[string]*room // room → local subscribers
	next   []int64          // per partition: offset of the next record fanout will see
	topic  string           //
	id     string           // topic id the tail reads
	part   kafka.RoomPartitioner
	recent map[string]*recentIDs // room → recent message ids
	boards map[string]*board     // "leaderboard" or "counters\x00room"
	ready  bool
	// batch numbers fanout calls; touched lists the connections the
	// current one queued to, each once, to wake their writers at the end.
	batch   uint64
	touched []*conn
}

// board is one leaderboard or counters channel with its subscribers and the
// last frame sent, so an unchanged board is not sent again.
type board struct {
	room  string // counters only
	conns map[*conn]struct{}
	last  []byte
	// dirty: a change notice arrived since the last read; the board is
	// re-read once at the next tick, whatever its subscriber count.
	dirty bool
}

func newHub(dedupeWindow, bufCap, bufBytes int) *hub {
	return &hub{
		dedupeWindow: dedupeWindow,
		bufCap:       bufCap,
		bufBytes:     bufBytes,
		rooms:        map[string]*room{},
		batch:        1,
		recent:       map[string]*recentIDs{},
		boards:       map[string]*board{},
	}
}

// start records the log the tail reads from and where it begins.
func (h *hub) start(topic, id string, next []int64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.topic, h.id, h.next, h.ready = topic, id, next, true
	h.part = kafka.NewRoomPartitioner(topic)
}

// partitionLocked returns the partition the producers put room in, over
// the topic's partition count.
func (h *hub) partitionLocked(room string) int32 {
	return h.part.Partition(room, len(h.next))
}

// position returns the room's partition, the tail's next offset on it, and
// the topic id.
func (h *hub) position(room string) (p int32, next int64, id string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	p = h.partitionLocked(room)
	return p, h.next[p], h.id
}

// subscribe adds c to room. With since (recover), live records are buffered
// until finishRecovery and the subscription starts after from; otherwise it
// starts at the tail's live point. It returns the tail's next offset at the
// moment of subscribing: a recovery must read up to just before it.
func (h *hub) subscribe(c *conn, roomName string, recover bool, from int64) (next int64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	r := h.rooms[roomName]
	if r == nil {
		r = &room{subs: map[*conn]*sub{}}
		h.rooms[roomName] = r
	}
	next = h.next[h.partitionLocked(roomName)]
	s := &sub{c: c, last: next - 1, leaveAt: -1}
	if recover {
		s.last, s.recovering = from, true
	}
	r.subs[c] = s
	return next
}

// unsubscribe removes c from room at once.
func (h *hub) unsubscribe(c *conn, roomName string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.removeLocked(c, roomName)
}

func (h *hub) removeLocked(c *conn, roomName string) {
	r := h.rooms[roomName]
	if r == nil {
		return
	}
	delete(r.subs, c)
	if len(r.subs) == 0 {
		delete(h.rooms, roomName)
	}
}

// leave ends c's subscription once its own MemberLeft at offset has been
// delivered, so the leaver sees its left frame like everyone else.
func (h *hub) leave(c *conn, roomName string, offset int64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	r := h.rooms[roomName]
	if r == nil || r.subs[c] == nil {
		return
	}
	s := r.subs[c]
	if s.last >= offset && !s.recovering {
		h.removeLocked(c, roomName)
		return
	}
	s.leaveAt = offset
}

// firstSeen returns the offset a message id was first seen at in room, if
// it is still remembered.
func (h *hub) firstSeen(roomName, id string) (int64, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	d := h.recent[roomName]
	if d == nil {
		return 0, false
	}
	off, ok := d.first[id]
	return off, ok
}

// finishRecovery ends c's recovery of room: buffered live records after
// last are delivered and the subscription goes live; a buffered message
// whose id the replay already delivered (seen) is dropped. ok is false when
// the buffer overflowed (the subscription is removed: the client must
// resync).
func (h *hub) finishRecovery(c *conn, roomName string, last int64, seen map[string]struct{}) (ok bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	r := h.rooms[roomName]
	if r == nil || r.subs[c] == nil {
		return false
	}
	s := r.subs[c]
	if s.overflow {
		h.removeLocked(c, roomName)
		return false
	}
	s.last = max(s.last, last)
	s.recovering = false
	defer h.wakeTouched()
	for _, d := range s.buf {
		if _, dup := seen[d.messageID]; dup && d.messageID != "" {
			continue
		}
		h.deliverLocked(r, s, d)
	}
	s.buf, s.bufBytes = nil, 0
	return true
}

// deliverLocked sends d to s if it is after s's position; it reports
// whether it was sent.
func (h *hub) deliverLocked(r *room, s *sub, d delivery) bool {
	if d.offset <= s.last {
		return false
	}
	s.last = d.offset
	sent := d.frame != nil && s.c.enqueue(d.frame)
	if sent && s.c.batchMark != h.batch {
		s.c.batchMark = h.batch
		h.touched = append(h.touched, s.c)
	}
	if s.leaveAt >= 0 && d.offset >= s.leaveAt {
		delete(r.subs, s.c)
	}
	return sent
}

// fanout delivers a batch of records of one partition, in offset order, to
// the rooms' subscribers, and advances the tail position. It never blocks:
// a connection whose queue is full is closed as slow.
func (h *hub) fanout(ds []delivery) (delivered, duplicates int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	defer h.wakeTouched()
	for _, d := range ds {
		if int(d.partition) < len(h.next) && d.offset >= h.next[d.partition] {
			h.next[d.partition] = d.offset + 1
		}
		if d.messageID != "" && h.isDupLocked(d.room, d.messageID, d.offset) {
			duplicates++
			continue
		}
		r := h.rooms[d.room]
		if r == nil {
			continue
		}
		for _, s := range r.subs {
			if s.recovering {
				if len(s.buf) >= h.bufCap || s.bufBytes+len(d.frame) > h.bufBytes {
					s.overflow, s.buf, s.bufBytes = true, nil, 0 // it resyncs: keep nothing
					continue
				}
				s.buf = append(s.buf, d)
				s.bufBytes += len(d.frame)
				continue
			}
			if h.deliverLocked(r, s, d) {
				delivered++
			}
		}
		if len(r.subs) == 0 {
			delete(h.rooms, d.room)
		}
	}
	return delivered, duplicates
}

// wakeTouched wakes the writer of every connection the current batch
// queued to, and starts a new batch.
func (h *hub) wakeTouched() {
	for _, c := range h.touched {
		c.signal()
	}
	clear(h.touched)
	h.touched = h.touched[:0]
	h.batch++
}

func (h *hub) isDupLocked(roomName, id string, off int64) bool {
	d := h.recent[roomName]
	if d == nil {
		if len(h.recent) >= maxDedupeRooms {
			for k := range h.recent { // evict one arbitrary room: the memory bound matters more
				delete(h.recent, k)
				break
			}
		}
		d = &recentIDs{first: map[string]int64{}}
		h.recent[roomName] = d
	}
	return d.seen(id, off, h.dedupeWindow)
}

// broadcast pushes a frame outside the log order (presence) to every local
// subscriber of room.
func (h *hub) broadcast(roomName string, frame []byte) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if r := h.rooms[roomName]; r != nil {
		for c := range r.subs {
			c.push(frame)
		}
	}
}

// resyncAll ends every subscription with a resync frame (the log was
// recreated) and moves the tail to a new log. Each connection leaves the
// room before its frame is queued, so a client that acts on the frame at
// once is no longer a member. It returns the connections affected, whose
// presence the caller ends.
func (h *hub) resyncAll(reason, id string, next []int64) map[*conn][]string {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := map[*conn][]string{}
	for name, r := range h.rooms {
		f := mustJSON(resyncFrame{Type: "resync", Room: name, Reason: reason})
		for c := range r.subs {
			c.setMember(name, false)
			c.push(f)
			out[c] = append(out[c], name)
		}
	}
	h.rooms = map[string]*room{}
	h.recent = map[string]*recentIDs{}
	h.id, h.next = id, next
	return out
}

func boardKey(channel, roomName string) string {
	if channel == "counters" {
		return "counters\x00" + roomName
	}
	return channel
}

// subscribeBoard adds c to a board channel and records snap as the last
// frame sent.
func (h *hub) subscribeBoard(c *conn, key, roomName string, snap []byte) {
	h.mu.Lock()
	defer h.mu.Unlock()
	b := h.boards[key]
	if b == nil {
		// snap is the newcomer's alone: on a board with subscribers, last
		// stays what they were sent, so a change they have not seen yet
		// still reaches them at the next read.
		// dirty: a notice that arrived between the snapshot's read and
		// now found no board to mark.
		b = &board{room: roomName, conns: map[*conn]struct{}{}, last: snap, dirty: true}
		h.boards[key] = b
	} else if !bytes.Equal(snap, b.last) {
		b.dirty = true // the newcomer and the others saw different states
	}
	b.conns[c] = struct{}{}
}

func (h *hub) unsubscribeBoard(c *conn, key string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if b := h.boards[key]; b != nil {
		delete(b.conns, c)
		if len(b.conns) == 0 {
			delete(h.boards, key)
		}
	}
}

// boardKeys lists the subscribed board channels (key → room), all of them
// or (onlyDirty) those marked changed, whose marks it clears.
func (h *hub) boardKeys(onlyDirty bool) map[string]string {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make(map[string]string, len(h.boards))
	for k, b := range h.boards {
		if onlyDirty && !b.dirty {
			continue
		}
		b.dirty = false
		out[k] = b.room
	}
	return out
}

// markDirty marks the board key as changed, if it is still subscribed.
func (h *hub) markDirty(key string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if b := h.boards[key]; b != nil {
		b.dirty = true
	}
}

// markBoards marks the subscribed boards c names as changed; boards no one
// here subscribes to are ignored.
func (h *hub) markBoards(c view.BoardChange) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if c.All {
		for _, b := range h.boards {
			b.dirty = true
		}
		return
	}
	if b := h.boards["leaderboard"]; b != nil && c.Leaderboard {
		b.dirty = true
	}
	for _, r := range c.Rooms {
		if b := h.boards[boardKey("counters", r)]; b != nil {
			b.dirty = true
		}
	}
}

// publishBoard sends frame to key's subscribers if it differs from the last
// one sent.
func (h *hub) publishBoard(key string, frame []byte) {
	h.mu.Lock()
	defer h.mu.Unlock()
	b := h.boards[key]
	if b == nil || bytes.Equal(b.last, frame) {
		return
	}
	b.last = frame
	for c := range b.conns {
		c.push(frame)
	}
}
