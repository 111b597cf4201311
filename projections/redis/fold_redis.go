package redis

import (
	"context"
	"fmt"
	"strconv"

	goredis "github.com/redis/go-redis/v9"

	"github.com/rtstack/rtstack/events"
)

// fold is one chunk of a partition's records folded in Go, for a version
// being built (see applyBuilt): gather names what the records refer to,
// load takes in the values read (one read per key), apply runs the rules
// of doc.go on them record by record, and queueWrites sends each key's net
// change. It holds only what the chunk touches: a few entries per record,
// plus the per-minute buckets of the rooms that receive messages (at most
// Window minutes each).
type fold struct {
	v     string // the version's key prefix: prefix + version + ":"
	span  int64  // (window-1) minutes in ms
	rooms map[string]*roomFold
	order []*roomFold // first seen first, so the writes come in a stable order
	ops   []op        // the chunk's records, resolved to indices by gather
	sent  names       // senders, for lb:sent (see sentDeltas)
	sentD []int64     // their lb:sent changes
	rxD   map[string]int64
	rxOf  []string // rxD's authors, first seen first

	free  []*roomFold  // rooms of earlier chunks, to reuse (see reset)
	args  arena[any]   // the writes' arguments (see arena)
	nums  arena[int64] // numbers computed for the writes
	reads []roomReads  // the reads queued for the chunk
}

// op is one record as gather resolved it.
type op struct {
	kind   byte // 'S' sent, 'A'/'D' reaction added/removed, 'J'/'L' joined/left
	off    int64
	room   *roomFold
	id     int32 // message: index in room.ids
	rx, mu int32 // reaction: indices in room.rxs, room.mus
	user   int32 // S: index in room.users; J/L: in room.members
	minute int64 // S: the event's minute (ms)
	who    string
}

// names numbers distinct strings in first-seen order.
type names struct {
	list []string
	idx  map[string]int32
}

func (n *names) reset() {
	clear(n.list)
	n.list = n.list[:0]
	clear(n.idx)
}

func (n *names) of(s string) int32 {
	if i, ok := n.idx[s]; ok {
		return i
	}
	if n.idx == nil {
		n.idx = map[string]int32{}
	}
	i := int32(len(n.list))
	n.idx[s] = i
	n.list = append(n.list, s)
	return i
}

// roomFold is what a chunk touches of one room; the slices run parallel
// to the names they are about.
type roomFold struct {
	name   string
	key    string // V + "r:" + room + ":"
	sends  bool
	reacts bool

	ids        names    // message ids (sends and reactions)
	idHash     []uint64 // their hashes in the build's idFilter
	toRead     []string // those the ids filter may have seen: read their author
	readAt     []int32  // their indices in ids
	author     []string // "" and !known: unknown
	known      []bool
	rxs, mus   names // reaction set members, rxn fields
	inRx, in0  []bool
	rxN, rxN0  []int64
	users      names   // senders: the room board's members to read
	score, lbD []int64 // their stored (negated) scores, and changes
	members    names
	member     []bool // after the chunk

	newest, oldest   int64
	hasNew, hasOld   bool
	newest0          string // the newest field as read ("" = none)
	moved            bool   // newest changed
	buckets, bucket0 map[int64]int64
	bucketName       map[int64]string // minute → its field name as read

	newMsgs []int32 // indices in ids of the messages first sent in the chunk
	total   int64
}

func newFold(v string, span int64) *fold {
	return &fold{v: v, span: span, rooms: map[string]*roomFold{}}
}

// reset empties f for the next chunk but keeps what it allocated: a build
// reuses its folds (versionStore.folds), so it allocates for the largest
// chunk once instead of for every chunk.
func (f *fold) reset() {
	for _, r := range f.order {
		r.reset()
	}
	f.free = append(f.free, f.order...)
	clear(f.order)
	f.order = f.order[:0]
	clear(f.rooms)
	clear(f.ops)
	f.ops = f.ops[:0]
	f.sent.reset()
	f.sentD = f.sentD[:0]
	clear(f.rxD)
	clear(f.rxOf)
	f.rxOf = f.rxOf[:0]
	f.args.reset()
	f.nums.reset()
	clear(f.reads)
}

func (r *roomFold) reset() {
	for _, n := range []*names{&r.ids, &r.rxs, &r.mus, &r.users, &r.members} {
		n.reset()
	}
	clear(r.toRead)
	clear(r.author)
	*r = roomFold{
		ids: r.ids, rxs: r.rxs, mus: r.mus, users: r.users, members: r.members,
		idHash: r.idHash[:0], toRead: r.toRead[:0], readAt: r.readAt[:0], author: r.author[:0], known: r.known[:0],
		inRx: r.inRx[:0], rxN: r.rxN[:0], rxN0: r.rxN0[:0], score: r.score[:0], lbD: r.lbD[:0],
		member: r.member[:0], newMsgs: r.newMsgs[:0],
		buckets: clearMap(r.buckets), bucket0: clearMap(r.bucket0), bucketName: clearMap(r.bucketName),
	}
}

func clearMap[K comparable, V any](m map[K]V) map[K]V {
	clear(m)
	return m
}

// zeroed returns s with length n, every element zero, reusing its array.
func zeroed[T any](s []T, n int) []T {
	if cap(s) < n {
		return make([]T, n)
	}
	s = s[:n]
	clear(s)
	return s
}

func (f *fold) room(name string) *roomFold {
	if r, ok := f.rooms[name]; ok {
		return r
	}
	var r *roomFold
	if n := len(f.free); n > 0 {
		r, f.free = f.free[n-1], f.free[:n-1]
	} else {
		r = &roomFold{}
	}
	r.name, r.key = name, f.v+"r:"+name+":"
	f.rooms[name] = r
	f.order = append(f.order, r)
	return r
}

// gather resolves recs to ops and notes what they refer to. It takes every
// record, also those the checkpoint will turn out to skip: reading a few
// keys more is harmless, and the checkpoint is read with the values.
func (f *fold) gather(recs []events.Record) {
	f.ops = f.ops[:0]
	for _, rec := range recs {
		o := op{off: rec.Offset}
		switch e := rec.Event.(type) {
		case *events.MessageSent:
			o.kind, o.room, o.who = 'S', f.room(e.Room), e.User
			o.room.sends = true
			o.id, o.user = o.room.ids.of(e.MessageID), o.room.users.of(e.User)
			o.minute = minuteOf(e.Time)
		case *events.ReactionAdded:
			o = f.reaction(o, 'A', e.Room, e.User, e.MessageID, e.Emoji)
		case *events.ReactionRemoved:
			o = f.reaction(o, 'D', e.Room, e.User, e.MessageID, e.Emoji)
		case *events.MemberJoined:
			o.kind, o.room = 'J', f.room(e.Room)
			o.user = o.room.members.of(e.User)
		case *events.MemberLeft:
			o.kind, o.room = 'L', f.room(e.Room)
			o.user = o.room.members.of(e.User)
		default:
			continue // changes nothing here (edits, deletes, webhooks)
		}
		f.ops = append(f.ops, o)
	}
}

func (f *fold) reaction(o op, kind byte, room, user, mid, emoji string) op {
	o.kind, o.room, o.who = kind, f.room(room), user
	o.room.reacts = true
	o.id = o.room.ids.of(mid)
	rx := reactionMember(mid, user, emoji)
	o.rx = o.room.rxs.of(rx)
	o.mu = o.room.mus.of(rx[:len(rx)-len(emoji)]) // reactionMember(mid, user, "")
	return o
}

// roomReads are the queued reads of one room (nil: not needed).
type roomReads struct {
	authors *goredis.SliceCmd
	inRx    *goredis.BoolSliceCmd
	rxN     *goredis.SliceCmd
	newest  *goredis.StringCmd
	pm      *goredis.MapStringStringCmd
	scores  *goredis.FloatSliceCmd
}

// watchKeys are the keys the chunk may write, but for the boards every
// partition shares (written with increments).
func (f *fold) watchKeys(keys []string) []string {
	for _, r := range f.order {
		if r.sends {
			keys = append(keys, r.key+"msgs", r.key+"meta", r.key+"pm", r.key+"lb")
		}
		if r.reacts {
			keys = append(keys, r.key+"rx", r.key+"rxn")
		}
		if len(r.members.list) > 0 {
			keys = append(keys, r.key+"members")
		}
	}
	return keys
}

// pick chooses the message ids whose author to read: those the filter
// may have seen (all of them with no filter). Call it after WATCH, so a
// write that adds an id after this look is one EXEC notices.
func (f *fold) pick(seen *idFilter) {
	for _, r := range f.order {
		if seen != nil {
			r.idHash = zeroed(r.idHash, len(r.ids.list))
			rh := seen.roomHash(r.name)
			for j, id := range r.ids.list {
				r.idHash[j] = seen.hash(rh, id)
			}
		}
		for j, id := range r.ids.list {
			if seen == nil || seen.mayHave(r.idHash[j]) {
				r.toRead = append(r.toRead, id)
				r.readAt = append(r.readAt, int32(j))
			}
		}
	}
}

// queueReads queues on pipe one read per key the chunk touches.
func (f *fold) queueReads(ctx context.Context, pipe goredis.Pipeliner) []roomReads {
	f.reads = zeroed(f.reads, len(f.order))
	out := f.reads
	for i, r := range f.order {
		q := &out[i]
		if len(r.toRead) > 0 {
			q.authors = pipe.HMGet(ctx, r.key+"msgs", r.toRead...)
		}
		if len(r.rxs.list) > 0 {
			q.inRx = pipe.SMIsMember(ctx, r.key+"rx", f.ptrs(r.rxs.list)...)
			q.rxN = pipe.HMGet(ctx, r.key+"rxn", r.mus.list...)
		}
		if r.sends {
			q.newest = pipe.HGet(ctx, r.key+"meta", "newest")
			q.pm = pipe.HGetAll(ctx, r.key+"pm")
			q.scores = pipe.ZMScore(ctx, r.key+"lb", r.users.list...)
		}
	}
	return out
}

// load takes in the values the reads returned.
func (f *fold) load(reads []roomReads) error {
	for i, r := range f.order {
		if err := r.load(&reads[i]); err != nil {
			return err
		}
	}
	return nil
}

func (r *roomFold) load(q *roomReads) error {
	r.author, r.known = zeroed(r.author, len(r.ids.list)), zeroed(r.known, len(r.ids.list))
	if q.authors != nil {
		for j, v := range q.authors.Val() {
			at := r.readAt[j]
			r.author[at], r.known[at] = v.(string)
		}
	}
	r.inRx, r.rxN, r.rxN0 = zeroed(r.inRx, len(r.rxs.list)), zeroed(r.rxN, len(r.mus.list)), zeroed(r.rxN0, len(r.mus.list))
	if q.inRx != nil {
		r.in0 = q.inRx.Val()
		copy(r.inRx, r.in0)
		for j, v := range q.rxN.Val() {
			n, err := intOr0(v)
			if err != nil {
				return fmt.Errorf("rxn %s: %w", r.mus.list[j], err)
			}
			r.rxN[j], r.rxN0[j] = n, n
		}
	}
	r.member = zeroed(r.member, len(r.members.list))
	r.lbD = zeroed(r.lbD, len(r.users.list))
	if !r.sends {
		return nil
	}
	return r.loadSends(q)
}

// loadSends takes in the newest minute, the buckets and the board scores.
func (r *roomFold) loadSends(q *roomReads) error {
	if s := q.newest.Val(); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return fmt.Errorf("newest minute %q: %w", s, err)
		}
		r.newest, r.hasNew, r.newest0 = n, true, s
	}
	kv := q.pm.Val()
	if r.buckets == nil {
		r.buckets, r.bucket0, r.bucketName = make(map[int64]int64, len(kv)+8), make(map[int64]int64, len(kv)), make(map[int64]string, len(kv))
	}
	for name, v := range kv {
		m, err1 := strconv.ParseInt(name, 10, 64)
		c, err2 := strconv.ParseInt(v, 10, 64)
		if err1 != nil || err2 != nil {
			return fmt.Errorf("bucket %q=%q is not a number", name, v)
		}
		r.buckets[m], r.bucket0[m], r.bucketName[m] = c, c, name
		if !r.hasOld || m < r.oldest {
			r.oldest, r.hasOld = m, true
		}
	}
	r.score = zeroed(r.score, len(r.users.list))
	for j, s := range q.scores.Val() {
		r.score[j] = int64(s)
	}
	return nil
}

// apply folds the ops at or past checkpoint cp, in order, into the values
// read: the rules of doc.go, as applyScript runs them.
func (f *fold) apply(cp int64) {
	for i := range f.ops {
		o := &f.ops[i]
		if o.off < cp {
			continue
		}
		switch o.kind {
		case 'S':
			f.sent1(o)
		case 'A', 'D':
			f.react(o)
		case 'J', 'L':
			o.room.member[o.user] = o.kind == 'J'
		}
	}
}

// sent1 counts a message once per id: the total, both boards, and the
// bucket of its minute when that is within the window of the room's
// newest minute (which only moves forward, dropping the buckets it leaves
// behind).
func (f *fold) sent1(o *op) {
	r, m := o.room, o.minute
	if r.known[o.id] {
		return
	}
	r.author[o.id], r.known[o.id] = o.who, true
	r.newMsgs = append(r.newMsgs, o.id)
	r.total++
	r.lbD[o.user]--
	if !r.hasNew || m > r.newest {
		if keep := m - f.span; r.hasNew && r.hasOld && keep > r.oldest {
			r.trim(keep)
		}
		r.newest, r.hasNew, r.moved = m, true, true
	}
	if m >= r.newest-f.span {
		r.buckets[m]++
		if !r.hasOld || m < r.oldest {
			r.oldest, r.hasOld = m, true
		}
	}
}

// trim drops the buckets below keep: minute by minute when that is
// shorter than visiting every bucket.
func (r *roomFold) trim(keep int64) {
	if keep-r.oldest <= 64*60_000 {
		for b := r.oldest; b < keep; b += 60_000 {
			delete(r.buckets, b)
		}
	} else {
		for b := range r.buckets {
			if b < keep {
				delete(r.buckets, b)
			}
		}
	}
	r.oldest = keep
}

// react adds or removes a reaction. Only a reaction by someone other than
// the author of a known message counts, and a user's distinct reactions on
// one message at most events.MaxReactionsPerUser times.
func (f *fold) react(o *op) {
	r := o.room
	if !r.known[o.id] || r.author[o.id] == o.who {
		return
	}
	author := r.author[o.id]
	switch {
	case o.kind == 'A' && !r.inRx[o.rx] && r.rxN[o.mu] < events.MaxReactionsPerUser:
		r.inRx[o.rx] = true
		r.rxN[o.mu]++
		f.rxDelta(author, -1)
	case o.kind == 'D' && r.inRx[o.rx]:
		r.inRx[o.rx] = false
		r.rxN[o.mu]--
		f.rxDelta(author, 1)
	}
}

func (f *fold) rxDelta(author string, by int64) {
	if f.rxD == nil {
		f.rxD = map[string]int64{}
	}
	if _, ok := f.rxD[author]; !ok {
		f.rxOf = append(f.rxOf, author)
	}
	f.rxD[author] += by
}

// queueWrites queues on pipe each key's net change. The changes to the
// boards every partition shares (lb:sent, lb:rx) are added to the stored
// scores by addScoresScript, inside the same MULTI, since another
// partition may change the same user's score in between.
func (f *fold) queueWrites(ctx context.Context, pipe goredis.Pipeliner, seen *idFilter) {
	for _, r := range f.order {
		if seen != nil {
			for _, j := range r.newMsgs {
				seen.add(r.idHash[j])
			}
		}
		r.queueWrites(ctx, pipe, f)
	}
	f.sentDeltas()
	args := f.args.take(2 * len(f.sent.list))
	for j := range f.sent.list {
		if f.sentD[j] != 0 {
			args = append(args, &f.sent.list[j], &f.sentD[j])
		}
	}
	f.addScores(ctx, pipe, f.v+"lb:sent", args)
	args = f.args.take(2 * len(f.rxOf))
	for j := range f.rxOf {
		if d := f.rxD[f.rxOf[j]]; d != 0 {
			args = append(args, &f.rxOf[j], f.nums.one(d))
		}
	}
	f.addScores(ctx, pipe, f.v+"lb:rx", args)
}

// sentDeltas sums the room boards' changes per user into the global
// board's (sent, sentD): each counted message moves both by one, so this
// costs a look-up per (room, sender) rather than one per message.
func (f *fold) sentDeltas() {
	f.sent.reset()
	f.sentD = f.sentD[:0]
	for _, r := range f.order {
		for j, u := range r.users.list {
			if d := r.lbD[j]; d != 0 {
				i := f.sent.of(u)
				if int(i) == len(f.sentD) {
					f.sentD = append(f.sentD, 0)
				}
				f.sentD[i] += d
			}
		}
	}
}

// addScores queues addScoresScript over key for pairs (user, delta, …),
// in calls of at most maxScoreArgs arguments. It is sent whole (EVAL, not
// EVALSHA): inside MULTI a script Redis lost would fail alone, after the
// other writes.
func (f *fold) addScores(ctx context.Context, pipe goredis.Pipeliner, key string, pairs []any) {
	for len(pairs) > 0 {
		n := min(len(pairs), maxScoreArgs)
		args := append(f.args.take(4+n), "eval", addScoresScript, 1, key)
		pipe.Do(ctx, append(args, pairs[:n]...)...)
		pairs = pairs[n:]
	}
}

// cmd returns the start of a command's arguments (name, key) with room
// for n more.
func (f *fold) cmd(name, key string, n int) []any {
	return append(f.args.take(2+n), name, key)
}

func (r *roomFold) queueWrites(ctx context.Context, pipe goredis.Pipeliner, f *fold) {
	if len(r.newMsgs) > 0 {
		args := f.cmd("hset", r.key+"msgs", 2*len(r.newMsgs))
		for _, j := range r.newMsgs {
			args = append(args, &r.ids.list[j], &r.author[j])
		}
		pipe.Do(ctx, args...)
	}
	if r.total > 0 {
		pipe.HIncrBy(ctx, r.key+"meta", "total", r.total)
	}
	if r.sends {
		if s := strconv.FormatInt(r.newest, 10); r.moved && s != r.newest0 {
			pipe.HSet(ctx, r.key+"meta", "newest", s)
		}
		r.queueBuckets(ctx, pipe)
	}
	r.queueBoard(ctx, pipe, f)
	r.queueReactions(ctx, pipe, f)
	r.queueMembers(ctx, pipe, f)
}

// queueBoard writes the room board's changed scores. The room board only
// goes down: a score stays below zero.
func (r *roomFold) queueBoard(ctx context.Context, pipe goredis.Pipeliner, f *fold) {
	args := f.cmd("zadd", r.key+"lb", 2*len(r.users.list))
	for j := range r.users.list {
		if d := r.lbD[j]; d != 0 {
			r.score[j] += d // the new score, written as an integer
			args = append(args, &r.score[j], &r.users.list[j])
		}
	}
	if len(args) > 2 {
		pipe.Do(ctx, args...)
	}
}

// queueReactions writes the reaction set's and the counts' changes.
func (r *roomFold) queueReactions(ctx context.Context, pipe goredis.Pipeliner, f *fold) {
	if len(r.rxs.list) == 0 {
		return
	}
	add, rem := f.cmd("sadd", r.key+"rx", len(r.rxs.list)), f.cmd("srem", r.key+"rx", len(r.rxs.list))
	for j := range r.rxs.list {
		if now := r.inRx[j]; now != r.in0[j] {
			if now {
				add = append(add, &r.rxs.list[j])
			} else {
				rem = append(rem, &r.rxs.list[j])
			}
		}
	}
	queueIfArgs(ctx, pipe, add)
	queueIfArgs(ctx, pipe, rem)
	set, del := f.cmd("hset", r.key+"rxn", 2*len(r.mus.list)), f.cmd("hdel", r.key+"rxn", len(r.mus.list))
	for j := range r.mus.list {
		if c := r.rxN[j]; c != r.rxN0[j] {
			if c > 0 {
				set = append(set, &r.mus.list[j], &r.rxN[j])
			} else {
				del = append(del, &r.mus.list[j])
			}
		}
	}
	queueIfArgs(ctx, pipe, set)
	queueIfArgs(ctx, pipe, del)
}

// queueMembers writes the members set's changes.
func (r *roomFold) queueMembers(ctx context.Context, pipe goredis.Pipeliner, f *fold) {
	if len(r.members.list) == 0 {
		return
	}
	add, rem := f.cmd("sadd", r.key+"members", len(r.members.list)), f.cmd("srem", r.key+"members", len(r.members.list))
	for j := range r.members.list {
		if r.member[j] {
			add = append(add, &r.members.list[j])
		} else {
			rem = append(rem, &r.members.list[j])
		}
	}
	queueIfArgs(ctx, pipe, add)
	queueIfArgs(ctx, pipe, rem)
}

// queueIfArgs queues args unless it holds only a command and its key.
func queueIfArgs(ctx context.Context, pipe goredis.Pipeliner, args []any) {
	if len(args) > 2 {
		pipe.Do(ctx, args...)
	}
}

// queueBuckets writes the buckets that changed and deletes those trimmed.
func (r *roomFold) queueBuckets(ctx context.Context, pipe goredis.Pipeliner) {
	var set []any
	var del []string
	for b, c := range r.buckets {
		if r.bucket0[b] != c {
			name, ok := r.bucketName[b]
			if !ok {
				name = strconv.FormatInt(b, 10)
			}
			set = append(set, name, c)
		}
	}
	for b := range r.bucket0 {
		if _, ok := r.buckets[b]; !ok {
			del = append(del, r.bucketName[b])
		}
	}
	if len(del) > 0 {
		pipe.HDel(ctx, r.key+"pm", del...)
	}
	if len(set) > 0 {
		pipe.HSet(ctx, r.key+"pm", set...)
	}
}

// intOr0 reads an HMGET value: nil is 0.
func intOr0(v any) (int64, error) {
	s, ok := v.(string)
	if !ok {
		return 0, nil
	}
	return strconv.ParseInt(s, 10, 64)
}

// ptrs are pointers to ss's elements, as command arguments (see arena).
func (f *fold) ptrs(ss []string) []any {
	out := f.args.take(len(ss))
	for i := range ss {
		out = append(out, &ss[i])
	}
	return out
}
