// Package redis is the Redis projection of the chat log: room counters
// (total messages, members, messages per minute of event time) and
// sorted-set leaderboards (messages sent, globally and per room; reactions
// received), with its checkpoints, versions for blue/green rebuilds, and the
// read queries the gateway serves. It implements projections.Versioned.
//
// It imports events, projections, projections/view and go-redis; never gateway, commands,
// tasks or another projection.
//
// # Keys
//
// With P the configured prefix (default "rtstack:"):
//
//	P active              string: name of the active version ("v<N>")
//	P epoch               string: id of this incarnation of the data (see Data loss)
//	P seq                 string: last version number handed out
//	P versions            set: versions that exist (active and being built)
//	P dropping            set: versions whose keys are being deleted
//	P created             hash: version -> when Begin created it (Unix ms)
//	P asof                hash: as-of version -> its cut (projections.Cut)
//	P sealed              set: as-of versions finished (read-only)
//	P v<N>:cp             hash: partition -> next offset to apply
//	P v<N>:log            string: topic id the version is built from (see Recreated log)
//	P v<N>:lb:sent        zset: user -> -(messages sent, all rooms)
//	P v<N>:lb:rx          zset: user -> -(reactions received)
//	P v<N>:r:<room>:meta  hash: total (messages), newest (newest event minute, ms)
//	P v<N>:r:<room>:pm    hash: minute start (ms) -> messages in that minute
//	P v<N>:r:<room>:members set: member user ids
//	P v<N>:r:<room>:msgs  hash: message id -> author (dedupe and reaction author)
//	P v<N>:r:<room>:rx    set: reactions (message id, user, emoji; length-prefixed)
//	P v<N>:r:<room>:rxn   hash: (message id, user) -> distinct emoji counted, for the cap
//	P v<N>:r:<room>:lb    zset: user -> -(messages sent in the room)
//	P v<N>:bw:<p>         string: checkpoint of partition p's last write by a
//	                      build (WATCHed; see Atomicity)
//	P boards:changed      pub/sub channel: after each committed Apply of the
//	                      active version, JSON {"leaderboard":true,"rooms":[…]}
//	                      naming the boards it changed; {"all":true} after a
//	                      Promote (WatchBoards reads it)
//
// Scores are stored negated so that ZRANGE gives highest first and ties by
// user id ascending; a score that comes back to zero is removed. Room names
// cannot collide across key kinds: every kind's suffix is a single word
// without ':'. Scripts build key names from their arguments, so the
// projection needs one Redis instance (not a cluster).
//
// # Rules (all from the log, in event time; never the wall clock)
//
//   - MessageSent counts once per (room, message id): the msgs hash is the
//     dedupe set, and is part of the projected state. It adds one to the
//     room's total, to the sender's score on the global and room boards, and
//     to the bucket of the event's minute.
//   - Buckets: the room's newest event minute only moves forward; when it
//     does, buckets older than Window minutes before it are deleted. A
//     message older than the window (relative to the room's newest minute,
//     not to now) counts in the total and boards but gets no bucket. Replaying
//     old events later gives the same buckets as the live run did.
//   - MessageEdited and MessageDeleted change nothing here: the counters and
//     boards count messages sent, and a deleted message was still sent.
//     Reactions on a deleted message follow the usual rules.
//   - ReactionAdded on a known message by someone other than its author
//     adds (message, user, emoji) to the room's reaction set; if it was not
//     there, and the user has fewer than events.MaxReactionsPerUser emoji on
//     that message, the author gets a point on the reactions board.
//     ReactionRemoved takes the point back only if the reaction was in the
//     set. Reactions on unknown messages, and on one's own message, score
//     nothing (a version built before this rule keeps its old points until
//     a rebuild).
//   - MemberJoined/MemberLeft add/remove the user in the room's member set
//     (idempotent). WebhookRegistered changes nothing.
//
// # Atomicity
//
// Apply sends a partition's batch as chunks (ChunkSize records each; one
// pipeline), each an EVALSHA of one script that reads the active pointer,
// skips records below the partition's checkpoint, folds the rest and
// advances the checkpoint, all atomically. The fold is in memory: the
// script reads each key the chunk touches once (HMGET of the message ids,
// SMISMEMBER of the reactions, the room's newest minute and buckets,
// ZMSCORE of the users), applies the records in order to those values,
// and writes each key's net change with one command, so a chunk costs a
// few commands per key rather than five per message. A chunk refuses to
// run if the checkpoint is below where the previous chunk left it, so a
// failed chunk never lets a later one skip records.
//
// A version being built (Begin, BeginAsOf: only the rebuild writes it)
// folds in Go instead, with no per-record script, in chunks of
// BuildChunkSize records. Under WATCH of the active pointer, the version
// list, the partition's bw key and every key the chunk may write, one
// pipeline reads the checkpoint and those keys (the authors of the message
// ids the chunk names, reaction set members and counts, the newest minute
// and buckets, the room board's scores); Go applies the records at or past
// the checkpoint to those values with the rules above; one MULTI/EXEC
// writes each key's net change (HSET, HDEL, SADD, SREM, ZADD, HINCRBY),
// the checkpoint and the bw key, and adds the changes of the two boards
// every partition shares (lb:sent, lb:rx) to their stored scores with one
// small EVAL. EXEC applies nothing if a watched key changed since the read
// (a late copy of the same chunk, another partition's chunk on the same
// room, a Promote, a dropped version): the chunk is then read and folded
// again. So a crash leaves a chunk wholly applied, checkpoint included, or
// not at all. Once the version is active (promoted while the rebuild still
// catches up) the rest of the batch goes through the script, as the live
// projector's does. A build holds in memory what one chunk touches (a few
// entries per record, and up to Window minutes of buckets per room that
// gets messages; the tables are reused from chunk to chunk, so the largest
// chunk sets the size), plus a fixed 8 MiB Bloom filter of the message ids
// it wrote: an id the filter never saw is certainly new (the version began
// empty), so its dedupe read is skipped.
//
// Promote flips the pointer in a script too (only if the new version's
// checkpoints are at or past the active one's on every partition), so
// every live chunk lands wholly in one version.
// The old version's keys are then deleted with SCAN + UNLINK in batches;
// a crash in between is finished by the next Open. Reads are scripts too
// (pointer and data read together), so they never see a half-dropped
// version.
//
// # Costs and failure modes
//
// The msgs hash keeps one field per distinct message (tens of bytes each):
// exact dedupe and the reaction author need it, and it is rebuilt like
// everything else. Redis must not evict keys (maxmemory-policy
// noeviction): a partial loss is not detected.
//
// # Data loss
//
// A Redis without persistence that restarts loses every key, checkpoints
// and active pointer included. The projection notices and replays, with no
// restart: Open records the epoch (a random id set whenever the active
// version is created), each partition's Apply passes the epoch its
// position belongs to, and the apply script, before writing, re-creates an
// empty active version under a fresh epoch if the pointer is gone (one
// script, so exactly one of the racing partitions and processes creates
// it) or finds the epoch is not the caller's. Either way nothing is applied
// and Apply returns an error wrapping projections.ErrStoreReset; the
// partition takes the new epoch, the runtime reloads Checkpoints (empty)
// and replays that partition from offset zero. The projection is a
// projections.LossDetector, so idle partitions are probed with empty
// batches and replay too. Until the first Apply re-creates the version,
// reads answer empty (zero counters, empty boards) and Digest is the empty
// projection's. A version being built when the data vanished answers
// ErrStoreReset as well, so the rebuild fails instead of retrying.
//
// # Recreated log
//
// The projection and the stores Begin returns implement
// projections.LogBinder: the runtime and Rebuild call BindLog before
// reading, the first call records the topic id in the version's log key
// (SET NX in a script), and a later call with another id returns an error
// wrapping projections.ErrLogChanged naming both ids: the topic was deleted
// and created again, and the old checkpoints must not skip the new log's
// records. The cure is a rebuild: its version is bound to the new id, and
// Promote flips to it without comparing checkpoints when both versions are
// bound to different logs (otherwise as above). Apply through an instance
// bound to one log refuses an active version bound to another. After data
// loss BindLog finds no active version and binds nothing; the Apply that
// re-creates the version binds it to the id its instance bound, if any,
// else the next BindLog does. Versions written before the log key existed
// are bound by their next BindLog, whatever log that reads.
package redis
