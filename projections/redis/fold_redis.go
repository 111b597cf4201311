package redis

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	goredis "github.com/redis/go-redis/v9"

	"github.com/rtstack/rtstack/events"
)

// fold is one chunk of a partition's records folded in Go, for a version
// being built (see applyBuilt): gather names what the records refer to,
// the values are read once per key, apply runs the rules of applyScript
// on them record by record, and writes lists each key's net change. It
// holds only what the chunk touches: at most a few entries per record, plus
// the per-minute buckets of the rooms that receive messages (at most Window
// minutes each).
type fold struct {
	v     string // the version's key prefix: prefix + version + ":"
	span  int64  // (window-1) minutes in ms
	rooms map[string]*roomFold
	order []*roomFold // first seen first, so the writes come in a stable order
	sent  deltas      // lb:sent
	rx    deltas      // lb:rx
}

// roomFold is what a chunk touches of one room.
type roomFold struct {
	key string // V + "r:" + room + ":"

	// What the records refer to, each once, in first-seen order.
	ids, rxs, mus, users []string
	seen                 map[string]struct{} // kind byte + name, for the four lists
	sends                bool

	// The values read, then folded.
	author            map[string]string // message id → author; absent: unknown
	inRx, inRx0       map[string]bool   // reaction set members
	rxN, rxN0         map[string]int64  // rxn counts
	score             map[string]int64  // room board, as stored (negated)
	newest, oldest    int64
	hasNew, hasOld    bool
	newestStr, newest0 string // the newest field as written, and as read ("" = none)
	buckets, buckets0 map[int64]int64
	names             map[int64]string // bucket minute → its field name

	newMsgs []string // message id, author, …
	total   int64
	lb      deltas
	mem     map[string]bool // user → member after the chunk
	memOf   []string        // mem's users, first seen first
}

// deltas sums score changes per user, remembering the order users came.
type deltas struct {
	by    map[string]int64
	order []string
}

func (d *deltas) add(user string, by int64) {
	if d.by == nil {
		d.by = map[string]int64{}
	}
	if _, ok := d.by[user]; !ok {
		d.order = append(d.order, user)
	}
	d.by[user] += by
}

func newFold(v string, span int64) *fold {
	return &fold{v: v, span: span, rooms: map[string]*roomFold{}}
}

func (f *fold) room(name string) *roomFold {
	if r, ok := f.rooms[name]; ok {
		return r
	}
	r := &roomFold{key: f.v + "r:" + name + ":", seen: map[string]struct{}{}, mem: map[string]bool{}}
	f.rooms[name] = r
	f.order = append(f.order, r)
	return r
}

// want appends name to *list once per kind.
func (r *roomFold) want(kind byte, list *[]string, name string) {
	k := string(kind) + name
	if _, ok := r.seen[k]; !ok {
		r.seen[k] = struct{}{}
		*list = append(*list, name)
	}
}

// gather notes what recs refer to. It looks at every record, also those
// the checkpoint will turn out to skip: reading a few keys more is
// harmless, and the checkpoint is read with the values.
func (f *fold) gather(recs []events.Record) {
	for _, rec := range recs {
		switch e := rec.Event.(type) {
		case *events.MessageSent:
			r := f.room(e.Room)
			r.sends = true
			r.want('i', &r.ids, e.MessageID)
			r.want('u', &r.users, e.User)
		case *events.ReactionAdded:
			f.gatherReaction(e.Room, e.User, e.MessageID, e.Emoji)
		case *events.ReactionRemoved:
			f.gatherReaction(e.Room, e.User, e.MessageID, e.Emoji)
		case *events.MemberJoined:
			f.room(e.Room)
		case *events.MemberLeft:
			f.room(e.Room)
		}
	}
}

func (f *fold) gatherReaction(room, user, mid, emoji string) {
	r := f.room(room)
	r.want('i', &r.ids, mid)
	r.want('r', &r.rxs, reactionMember(mid, user, emoji))
	r.want('m', &r.mus, reactionMember(mid, user, ""))
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

// queueReads queues on pipe one read per key the chunk touches.
func (f *fold) queueReads(ctx context.Context, pipe goredis.Pipeliner) []roomReads {
	out := make([]roomReads, len(f.order))
	for i, r := range f.order {
		q := &out[i]
		if len(r.ids) > 0 {
			q.authors = pipe.HMGet(ctx, r.key+"msgs", r.ids...)
		}
		if len(r.rxs) > 0 {
			q.inRx = pipe.SMIsMember(ctx, r.key+"rx", anys(r.rxs)...)
			q.rxN = pipe.HMGet(ctx, r.key+"rxn", r.mus...)
		}
		if r.sends {
			q.newest = pipe.HGet(ctx, r.key+"meta", "newest")
			q.pm = pipe.HGetAll(ctx, r.key+"pm")
			q.scores = pipe.ZMScore(ctx, r.key+"lb", r.users...)
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
	r.author = make(map[string]string, len(r.ids))
	if q.authors != nil {
		for j, v := range q.authors.Val() {
			if s, ok := v.(string); ok {
				r.author[r.ids[j]] = s
			}
		}
	}
	r.inRx, r.inRx0 = make(map[string]bool, len(r.rxs)), make(map[string]bool, len(r.rxs))
	r.rxN, r.rxN0 = make(map[string]int64, len(r.mus)), make(map[string]int64, len(r.mus))
	if q.inRx != nil {
		for j, in := range q.inRx.Val() {
			r.inRx[r.rxs[j]], r.inRx0[r.rxs[j]] = in, in
		}
		for j, v := range q.rxN.Val() {
			n, err := intOr0(v)
			if err != nil {
				return fmt.Errorf("rxn %s: %w", r.mus[j], err)
			}
			r.rxN[r.mus[j]], r.rxN0[r.mus[j]] = n, n
		}
	}
	if !r.sends {
		return nil
	}
	return r.loadSends(q)
}

// loadSends takes in the newest minute, the buckets and the board scores.
func (r *roomFold) loadSends(q *roomReads) error {
	if s, err := q.newest.Result(); err == nil {
		n, perr := strconv.ParseInt(s, 10, 64)
		if perr != nil {
			return fmt.Errorf("newest minute %q: %w", s, perr)
		}
		r.newest, r.hasNew, r.newestStr, r.newest0 = n, true, s, s
	} else if err != goredis.Nil { //nolint:errorlint // go-redis returns Nil itself, unwrapped
		return err
	}
	kv := q.pm.Val()
	r.buckets, r.buckets0, r.names = make(map[int64]int64, len(kv)), make(map[int64]int64, len(kv)), make(map[int64]string, len(kv))
	for name, v := range kv {
		m, err1 := strconv.ParseInt(name, 10, 64)
		c, err2 := strconv.ParseInt(v, 10, 64)
		if err1 != nil || err2 != nil {
			return fmt.Errorf("bucket %q=%q is not a number", name, v)
		}
		r.buckets[m], r.buckets0[m], r.names[m] = c, c, name
		if !r.hasOld || m < r.oldest {
			r.oldest, r.hasOld = m, true
		}
	}
	r.score = make(map[string]int64, len(r.users))
	for j, s := range q.scores.Val() {
		r.score[r.users[j]] = int64(s)
	}
	return nil
}

// apply folds the records at or past cp, in order, into the values read.
// The rules are applyScript's (see doc.go).
func (f *fold) apply(recs []events.Record, cp int64) {
	for _, rec := range recs {
		if rec.Offset < cp {
			continue
		}
		switch e := rec.Event.(type) {
		case *events.MessageSent:
			f.sent1(f.rooms[e.Room], e.User, e.MessageID, minuteOf(e.Time))
		case *events.ReactionAdded:
			f.react(f.rooms[e.Room], true, e.User, e.MessageID, e.Emoji)
		case *events.ReactionRemoved:
			f.react(f.rooms[e.Room], false, e.User, e.MessageID, e.Emoji)
		case *events.MemberJoined:
			f.rooms[e.Room].member(e.User, true)
		case *events.MemberLeft:
			f.rooms[e.Room].member(e.User, false)
		}
	}
}

// sent1 counts a message once per id: the total, both boards, and the
// bucket of its minute m when m is within the window of the room's newest
// minute (which only moves forward, dropping the buckets it leaves behind).
func (f *fold) sent1(r *roomFold, user, id string, m int64) {
	if _, known := r.author[id]; known {
		return
	}
	r.author[id] = user
	r.newMsgs = append(r.newMsgs, id, user)
	r.total++
	f.sent.add(user, -1)
	r.lb.add(user, -1)
	if !r.hasNew || m > r.newest {
		r.newestStr = strconv.FormatInt(m, 10)
		keep := m - f.span
		if r.hasNew && r.hasOld && keep > r.oldest {
			r.trim(keep)
		}
		r.newest, r.hasNew = m, true
	}
	if m >= r.newest-f.span {
		r.buckets[m]++
		r.names[m] = strconv.FormatInt(m, 10)
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

// react adds (add) or removes a reaction. Only a reaction by someone
// other than the author of a known message counts, and a user's distinct
// reactions on one message at most events.MaxReactionsPerUser times.
func (f *fold) react(r *roomFold, add bool, user, mid, emoji string) {
	author, known := r.author[mid]
	if !known || author == user {
		return
	}
	member, mu := reactionMember(mid, user, emoji), reactionMember(mid, user, "")
	switch {
	case add && !r.inRx[member] && r.rxN[mu] < events.MaxReactionsPerUser:
		r.inRx[member] = true
		r.rxN[mu]++
		f.rx.add(author, -1)
	case !add && r.inRx[member]:
		r.inRx[member] = false
		r.rxN[mu]--
		f.rx.add(author, 1)
	}
}

func (r *roomFold) member(user string, in bool) {
	if _, ok := r.mem[user]; !ok {
		r.memOf = append(r.memOf, user)
	}
	r.mem[user] = in
}

// writes encodes each key's net change as buildScript's commands:
// op, key, argument count, arguments; no command has more than
// maxWriteArgs arguments.
func (f *fold) writes(args []any) []any {
	w := writer{args: args}
	for _, r := range f.order {
		r.writes(&w)
	}
	w.zinc(f.v+"lb:sent", &f.sent)
	w.zinc(f.v+"lb:rx", &f.rx)
	return w.args
}

func (r *roomFold) writes(w *writer) {
	w.cmd("HSET", r.key+"msgs", r.newMsgs)
	if r.total > 0 {
		w.cmd("HINCRBY", r.key+"meta", []string{"total", strconv.FormatInt(r.total, 10)})
	}
	if r.sends {
		if r.newestStr != r.newest0 {
			w.cmd("HSET", r.key+"meta", []string{"newest", r.newestStr})
		}
		var set, del []string
		for b, c := range r.buckets {
			if r.buckets0[b] != c {
				set = append(set, r.names[b], strconv.FormatInt(c, 10))
			}
		}
		for b := range r.buckets0 {
			if _, ok := r.buckets[b]; !ok {
				del = append(del, r.names[b])
			}
		}
		w.cmd("HDEL", r.key+"pm", del)
		w.cmd("HSET", r.key+"pm", set)
	}
	r.boardWrites(w)
	r.reactionWrites(w)
	var add, rem []string
	for _, u := range r.memOf {
		if r.mem[u] {
			add = append(add, u)
		} else {
			rem = append(rem, u)
		}
	}
	w.cmd("SADD", r.key+"members", add)
	w.cmd("SREM", r.key+"members", rem)
}

// boardWrites sets the room board's changed scores; a score that reaches
// zero or more is removed (as in applyScript; the room board only goes down).
func (r *roomFold) boardWrites(w *writer) {
	var add, rem []string
	for _, u := range r.lb.order {
		d := r.lb.by[u]
		if d == 0 {
			continue
		}
		if s := r.score[u] + d; s >= 0 {
			rem = append(rem, u)
		} else {
			add = append(add, strconv.FormatInt(s, 10), u)
		}
	}
	w.cmd("ZADD", r.key+"lb", add)
	w.cmd("ZREM", r.key+"lb", rem)
}

func (r *roomFold) reactionWrites(w *writer) {
	var add, rem []string
	for _, m := range r.rxs {
		if now := r.inRx[m]; now != r.inRx0[m] {
			if now {
				add = append(add, m)
			} else {
				rem = append(rem, m)
			}
		}
	}
	w.cmd("SADD", r.key+"rx", add)
	w.cmd("SREM", r.key+"rx", rem)
	var set, del []string
	for _, mu := range r.mus {
		if c := r.rxN[mu]; c != r.rxN0[mu] {
			if c > 0 {
				set = append(set, mu, strconv.FormatInt(c, 10))
			} else {
				del = append(del, mu)
			}
		}
	}
	w.cmd("HSET", r.key+"rxn", set)
	w.cmd("HDEL", r.key+"rxn", del)
}

// maxWriteArgs bounds one command's arguments in buildScript: below Lua's
// unpack limit (8000), and even, so pairs are never split.
const maxWriteArgs = 4000

// writer appends buildScript's commands.
type writer struct{ args []any }

// cmd appends op key args…, split into commands of at most maxWriteArgs
// arguments; nothing when args is empty.
func (w *writer) cmd(op, key string, args []string) {
	for len(args) > 0 {
		n := min(len(args), maxWriteArgs)
		w.args = append(w.args, op, key, strconv.Itoa(n))
		for _, a := range args[:n] {
			w.args = append(w.args, a)
		}
		args = args[n:]
	}
}

// zinc appends the score changes d of a board shared by every partition:
// the script adds them to the stored scores itself (ZINC), atomically,
// since another partition may change the same user's score in between.
func (w *writer) zinc(key string, d *deltas) {
	var args []string
	for _, u := range d.order {
		if by := d.by[u]; by != 0 {
			args = append(args, u, strconv.FormatInt(by, 10))
		}
	}
	w.cmd("ZINC", key, args)
}

// intOr0 reads an HMGET value: nil is 0.
func intOr0(v any) (int64, error) {
	s, ok := v.(string)
	if !ok {
		return 0, nil
	}
	return strconv.ParseInt(s, 10, 64)
}

func anys(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}

// maxFoldAttempts bounds how often buildChunk reads a chunk again because
// another write of the partition came between its read and its write.
const maxFoldAttempts = 3

// applyBuilt folds recs into a version being built, chunk by chunk
// (BuildChunkSize records), each in two round trips: one MULTI reads the
// checkpoint and every key the chunk touches, Go folds the records into
// those values, and buildScript writes each key's net change with the
// checkpoint, atomically, if the checkpoint is still the one read. Only a
// rebuild writes a version being built, so nothing else changes its keys
// in between; if anything did (a promoted version is also the live
// projector's), the checkpoint moved with it and the chunk is read again.
// A crash between the two leaves the version as the read found it.
func (p *Projection) applyBuilt(ctx context.Context, version string, partition int32, recs []events.Record, next int64) error {
	for _, r := range recs {
		if r.Partition != partition {
			return fmt.Errorf("redis projection: record at %s in a batch of partition %d", r.Position, partition)
		}
	}
	part := strconv.FormatInt(int64(partition), 10)
	chunk := p.cfg.BuildChunkSize
	for start := 0; start == 0 || start < len(recs); start += chunk {
		end := min(start+chunk, len(recs))
		to := next
		if end < len(recs) {
			to = recs[end].Offset
		}
		if err := p.buildChunk(ctx, version, part, recs[start:end], to); err != nil {
			if reset := p.reset(partition, version, err); reset != nil {
				return reset
			}
			return fmt.Errorf("redis projection: apply %d records of partition %d to %s: %w", len(recs), partition, version, err)
		}
	}
	return nil
}

// buildChunk folds one chunk, reading it again while another write of the
// partition comes between its read and its write (at most
// maxFoldAttempts times).
func (p *Projection) buildChunk(ctx context.Context, version, part string, recs []events.Record, next int64) error {
	for attempt := 1; ; attempt++ {
		err := p.foldOnce(ctx, version, part, recs, next)
		if err == nil || !strings.HasPrefix(err.Error(), "RTSTACK moved") || attempt == maxFoldAttempts {
			return err
		}
	}
}

func (p *Projection) foldOnce(ctx context.Context, version, part string, recs []events.Record, next int64) error {
	f := newFold(p.cfg.Prefix+version+":", p.span)
	f.gather(recs)
	pipe := p.rdb.TxPipeline()
	known := pipe.SIsMember(ctx, p.cfg.Prefix+"versions", version)
	cpCmd := pipe.HGet(ctx, f.v+"cp", part)
	reads := f.queueReads(ctx, pipe)
	cmds, err := pipe.Exec(ctx)
	for _, c := range cmds {
		if c.Err() != nil && !errors.Is(c.Err(), goredis.Nil) {
			return c.Err()
		}
	}
	if err != nil && !errors.Is(err, goredis.Nil) {
		return err
	}
	if !known.Val() {
		return errors.New("RTSTACK version " + version + " does not exist")
	}
	cpStr := cpCmd.Val()
	if cpStr == "" {
		cpStr = "0"
	}
	cp, err := strconv.ParseInt(cpStr, 10, 64)
	if err != nil {
		return fmt.Errorf("checkpoint %q: %w", cpStr, err)
	}
	if next <= cp {
		return nil // every record is below the checkpoint, which stays
	}
	if err := f.load(reads); err != nil {
		return err
	}
	f.apply(recs, cp)
	args := f.writes([]any{p.cfg.Prefix, version, part, cpStr, strconv.FormatInt(next, 10)})
	return p.run(ctx, buildScript, args...).Err()
}
