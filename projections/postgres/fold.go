package postgres

import (
	"maps"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/rtstack/rtstack/events"
)

// The fold is a pure function of (the batch, the rows it references): it
// decides every rule in memory and yields the writes. Rules:
//   - a MessageSent whose (room, message_id) exists keeps the first row;
//   - an edit or delete counts only from the author, on a message of the
//     same room that is not deleted;
//   - a delete blanks text and mentions and removes the message's reactions;
//   - reactions and members are sets: adding what is there keeps the first
//     row (and its position), removing what is absent is a no-op; reactions
//     count only on a live message of the same room, and a user's
//     (events.MaxReactionsPerUser+1)th distinct emoji on one message is
//     ignored;
//   - a room and a webhook are created by their first event; a
//     WebhookRemoved deletes it (removals are written before creations,
//     so remove-then-register in one batch ends as across batches).
// All keys include the room, and a room lives in one partition, so the
// result never depends on how partitions interleave or how the log is cut
// into batches.

type msgKey struct{ room, id string }

// msg is a message row as the fold sees it.
type msg struct {
	room, id, user, text string
	ts                   int64
	partition            int32
	offset               int64
	edited               bool
	editedTS             int64
	deleted              bool
	deletedTS            int64
	mentions             []string
	inDB                 bool // loaded from the table (else inserted by this batch)
	dirty                bool // an inDB row that changed
	deletedHere          bool // an inDB row deleted by this batch
}

type reactKey struct{ room, id, emoji, user string }
type memberKey struct{ room, user string }

// setOp is the net effect of a batch on one member of a set.
type setOp struct {
	present   bool  // final state
	removed   bool  // a removal happened: delete what the table had first
	ts        int64 // of the add that made it present
	partition int32
	offset    int64
}

type room struct {
	ts        int64
	partition int32
	offset    int64
}

type webhook struct {
	room, id, url, user string
	ts                  int64
	partition           int32
	offset              int64
}

// fold is the result of one batch.
type fold struct {
	msgs      map[msgKey]*msg
	newMsgs   []*msg // inserted by this batch, in log order
	reactions map[reactKey]*setOp
	members   map[memberKey]*setOp
	rooms     map[string]room
	roomOrder []string
	webhooks  []webhook
	hookSeen  map[msgKey]bool
	// hooksRemoved are the webhooks a WebhookRemoved deleted, in log order.
	hooksRemoved []msgKey
	// reactsOf indexes reactions by message, so a delete drops them fast.
	reactsOf map[msgKey][]reactKey
	slab     []msg // newMsg's current allocation
	// present are the emoji each user has on a message (loaded from the
	// table for the pairs the batch adds to, then folded), for the cap.
	present map[msgKey]map[string]map[string]bool
}

// refs returns the message keys recs refers to without sending them first
// (edits, deletes, reactions): the rows to load before folding. Its maps
// hold only referenced keys, so a batch of sends alone allocates nothing.
func refs(recs []events.Record) []msgKey {
	first := map[msgKey]int{} // index of the first reference
	var out []msgKey
	for i, r := range recs {
		var room, id string
		switch ev := r.Event.(type) {
		case *events.MessageEdited:
			room, id = ev.Room, ev.MessageID
		case *events.MessageDeleted:
			room, id = ev.Room, ev.MessageID
		case *events.ReactionAdded:
			room, id = ev.Room, ev.MessageID
		case *events.ReactionRemoved:
			room, id = ev.Room, ev.MessageID
		default:
			continue
		}
		k := msgKey{clean(room), clean(id)}
		if _, ok := first[k]; !ok {
			first[k] = i
			out = append(out, k)
		}
	}
	if len(out) == 0 {
		return nil
	}
	sentFirst := map[msgKey]bool{}
	for i, r := range recs {
		if ev, ok := r.Event.(*events.MessageSent); ok {
			k := msgKey{clean(ev.Room), clean(ev.MessageID)}
			if j, ok := first[k]; ok && i < j {
				sentFirst[k] = true
			}
		}
	}
	return slices.DeleteFunc(out, func(k msgKey) bool { return sentFirst[k] })
}

// sentKeys returns the keys of the messages recs send.
func sentKeys(recs []events.Record) []msgKey {
	var out []msgKey
	for _, r := range recs {
		if ev, ok := r.Event.(*events.MessageSent); ok {
			out = append(out, msgKey{clean(ev.Room), clean(ev.MessageID)})
		}
	}
	return out
}

// foldBatch folds recs over loaded, the existing rows of the keys they
// reference (a key absent from loaded does not exist in the table).
func foldBatch(recs []events.Record, loaded map[msgKey]*msg, present map[msgKey]map[string]map[string]bool) *fold {
	if present == nil {
		present = map[msgKey]map[string]map[string]bool{}
	}
	f := &fold{
		present:   present,
		msgs:      make(map[msgKey]*msg, len(loaded)+len(recs)),
		reactions: map[reactKey]*setOp{},
		members:   map[memberKey]*setOp{},
		rooms:     map[string]room{},
		hookSeen:  map[msgKey]bool{},
		reactsOf:  map[msgKey][]reactKey{},
	}
	// Sized once: growing a map of a replay's 20,000 sends rehashed it a
	// dozen times.
	maps.Copy(f.msgs, loaded)
	for _, r := range recs {
		env := r.Event.Env()
		rm, user := clean(env.Room), clean(env.User)
		if _, ok := f.rooms[rm]; !ok {
			f.rooms[rm] = room{ts: env.Time, partition: r.Partition, offset: r.Offset}
			f.roomOrder = append(f.roomOrder, rm)
		}
		switch ev := r.Event.(type) {
		case *events.MessageSent:
			k := msgKey{rm, clean(ev.MessageID)}
			if _, ok := f.msgs[k]; ok {
				continue // duplicate: the first row stays
			}
			m := f.newMsg()
			*m = msg{room: rm, id: k.id, user: user, text: clean(ev.Text), ts: env.Time,
				partition: r.Partition, offset: r.Offset, mentions: cleanAll(ev.Mentions)}
			f.msgs[k] = m
			f.newMsgs = append(f.newMsgs, m)
		case *events.MessageEdited:
			m := f.live(rm, ev.MessageID)
			if m == nil || m.user != user {
				continue
			}
			m.text, m.edited, m.editedTS = clean(ev.Text), true, env.Time
			m.dirty = m.inDB
		case *events.MessageDeleted:
			m := f.live(rm, ev.MessageID)
			if m == nil || m.user != user {
				continue
			}
			m.text, m.mentions, m.deleted, m.deletedTS = "", nil, true, env.Time
			m.dirty = m.inDB
			m.deletedHere = m.inDB
			for _, rk := range f.reactsOf[msgKey{rm, m.id}] {
				delete(f.reactions, rk)
			}
			delete(f.present, msgKey{rm, m.id})
		case *events.ReactionAdded:
			if f.live(rm, ev.MessageID) == nil {
				continue
			}
			k := reactKey{rm, clean(ev.MessageID), clean(ev.Emoji), user}
			if !f.mayReact(k) {
				continue // over the cap: ignored, as the gateway would have
			}
			if f.reactions[k] == nil {
				mk := msgKey{rm, k.id}
				f.reactsOf[mk] = append(f.reactsOf[mk], k)
			}
			f.reactions[k] = add(f.reactions[k], env.Time, r.Position)
		case *events.ReactionRemoved:
			if f.live(rm, ev.MessageID) == nil {
				continue
			}
			k := reactKey{rm, clean(ev.MessageID), clean(ev.Emoji), user}
			if f.reactions[k] == nil {
				mk := msgKey{rm, k.id}
				f.reactsOf[mk] = append(f.reactsOf[mk], k)
			}
			f.reactions[k] = remove(f.reactions[k])
			delete(f.present[msgKey{rm, k.id}][user], k.emoji)
		case *events.MemberJoined:
			k := memberKey{rm, user}
			f.members[k] = add(f.members[k], env.Time, r.Position)
		case *events.MemberLeft:
			k := memberKey{rm, user}
			f.members[k] = remove(f.members[k])
		case *events.WebhookRegistered:
			k := msgKey{rm, clean(ev.WebhookID)}
			if f.hookSeen[k] {
				continue
			}
			f.hookSeen[k] = true
			f.webhooks = append(f.webhooks, webhook{room: rm, id: k.id, url: clean(ev.URL), user: user,
				ts: env.Time, partition: r.Partition, offset: r.Offset})
		case *events.WebhookRemoved:
			k := msgKey{rm, clean(ev.WebhookID)}
			f.hookSeen[k] = false // registered again later: created again, as in another batch
			f.webhooks = slices.DeleteFunc(f.webhooks, func(w webhook) bool { return w.room == k.room && w.id == k.id })
			f.hooksRemoved = append(f.hooksRemoved, k)
		}
	}
	return f
}

// newMsg returns a zero msg from the fold's slab: a replay batch sends
// thousands of messages, allocated a slab at a time rather than one by one.
func (f *fold) newMsg() *msg {
	if len(f.slab) == cap(f.slab) {
		f.slab = make([]msg, 0, msgSlab)
	}
	f.slab = f.slab[:len(f.slab)+1]
	return &f.slab[len(f.slab)-1]
}

// msgSlab is how many msgs newMsg allocates at once.
const msgSlab = 256

// mayReact notes k's emoji as the user's on the message and reports true,
// unless the user has events.MaxReactionsPerUser other emoji there.
func (f *fold) mayReact(k reactKey) bool {
	mk := msgKey{k.room, k.id}
	byUser := f.present[mk]
	if byUser == nil {
		byUser = map[string]map[string]bool{}
		f.present[mk] = byUser
	}
	set := byUser[k.user]
	if set == nil {
		set = map[string]bool{}
		byUser[k.user] = set
	}
	if !set[k.emoji] && len(set) >= events.MaxReactionsPerUser {
		return false
	}
	set[k.emoji] = true
	return true
}

// live returns the message if it exists and is not deleted.
func (f *fold) live(room, id string) *msg {
	m := f.msgs[msgKey{room, clean(id)}]
	if m == nil || m.deleted {
		return nil
	}
	return m
}

func add(op *setOp, ts int64, pos events.Position) *setOp {
	if op == nil {
		// Unknown whether the table has it: insert-if-absent keeps the first.
		return &setOp{present: true, ts: ts, partition: pos.Partition, offset: pos.Offset}
	}
	if !op.present {
		op.present, op.ts, op.partition, op.offset = true, ts, pos.Partition, pos.Offset
	}
	return op
}

func remove(op *setOp) *setOp {
	if op == nil {
		op = &setOp{}
	}
	op.present, op.removed = false, true
	return op
}

// clean makes s storable as Postgres text, deterministically: invalid UTF-8
// and NUL become U+FFFD. The edge rejects both; this keeps an event that
// slipped past from stalling the partition.
func clean(s string) string {
	if utf8.ValidString(s) && strings.IndexByte(s, 0) < 0 {
		return s
	}
	return strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "\uFFFD")
}

func cleanAll(ss []string) []string {
	if len(ss) == 0 {
		return nil
	}
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = clean(s)
	}
	return out
}
