package redis

import (
	"strconv"
	"strings"

	goredis "github.com/redis/go-redis/v9"

	"github.com/rtstack/rtstack/events"
)

// The Lua scripts. Each one resolves the version it works on inside the
// script, so it is atomic with respect to Promote. Key names are built from
// ARGV (the projection runs on one Redis instance, not a cluster; see doc.go).
//
// A script that raised an error half-way would keep its earlier writes
// (Redis scripts do not roll back), so the scripts validate before they
// write, and Go validates and encodes every argument before calling them.

// applyScript folds one chunk of a partition's records and advances that
// partition's checkpoint, in one atomic step.
//
// ARGV: 1 prefix, 2 version ("" = the active one), 3 partition, 4 next
// checkpoint, 5 required checkpoint (-1 = none: the chunk must not start past
// a gap left by an earlier chunk that failed), 6 kept span in ms
// ((window-1) minutes), 7 the epoch the caller's position for this
// partition belongs to, 8 a fresh epoch (used if the data must be
// re-created), 9 the topic id the caller bound the active version to ("" =
// none), then the records, each an op code followed by fixed fields:
//
//	S off room user minute mid     message sent (minute = event minute, ms)
//	A off room user mid member mu  reaction added (member = reaction set entry,
//	                               mu = the message-and-user field of the rxn count)
//	D off room user mid member mu  reaction removed
//	J off room user                member joined
//	L off room user                member left
//
// Returns the number of records folded (those at or above the checkpoint).
//
// On the active version it first checks the epoch, the id of this
// incarnation of the projection's data: if the active pointer is gone (Redis
// lost its data) it re-creates an empty active version under the fresh
// epoch and answers "RTSTACK reset-created <epoch>"; if the epoch is not the
// caller's it answers "RTSTACK reset <epoch>". Either way nothing is
// applied: the caller's position belongs to data that no longer exists.
// Being one script, exactly one caller re-creates the version, and binds it
// to the caller's topic id (ARGV 9) if it has one. If the active version is
// bound to another topic id than ARGV 9 (a rebuild promoted a version of a
// recreated log), it answers "RTSTACK log <bound id>" and applies nothing.
var applyScript = goredis.NewScript(strings.ReplaceAll(`
local P = ARGV[1]
local ver = ARGV[2]
if ver == '' then
  ver = redis.call('GET', P .. 'active')
  local ep = redis.call('GET', P .. 'epoch')
  if not ver then
    ver = 'v' .. redis.call('INCR', P .. 'seq')
    redis.call('SADD', P .. 'versions', ver)
    redis.call('SET', P .. 'active', ver)
    redis.call('SET', P .. 'epoch', ARGV[8])
    if ARGV[9] ~= '' then redis.call('SET', P .. ver .. ':log', ARGV[9]) end
    return redis.error_reply('RTSTACK reset-created ' .. ARGV[8] .. ' ' .. ver)
  end
  if not ep then
    ep = ARGV[8]
    redis.call('SET', P .. 'epoch', ep)
  end
  if ep ~= ARGV[7] then
    return redis.error_reply('RTSTACK reset ' .. ep)
  end
  if ARGV[9] ~= '' then
    local bound = redis.call('GET', P .. ver .. ':log')
    if bound and bound ~= ARGV[9] then
      return redis.error_reply('RTSTACK log ' .. bound)
    end
  end
elseif redis.call('SISMEMBER', P .. 'versions', ver) == 0 then
  return redis.error_reply('RTSTACK version ' .. ver .. ' does not exist')
end
local V = P .. ver .. ':'
local part = ARGV[3]
local nxt = tonumber(ARGV[4])
local req = tonumber(ARGV[5])
local span = tonumber(ARGV[6])
local cp = tonumber(redis.call('HGET', V .. 'cp', part) or '0')
if cp < req then
  return redis.error_reply('RTSTACK gap: checkpoint ' .. cp .. ' below ' .. req)
end
-- The chunk is folded in three passes, so each key gets a few commands
-- per chunk however many records touch it: gather what the records refer
-- to, read it with one command per key (HMGET, SMISMEMBER, ZMSCORE, ...),
-- apply every record in order to those values in Lua tables, then write
-- each key's net change with one command. The rules (and so the result)
-- are those of applying the records one by one; see doc.go.
local STEP = 4000 -- elements per command: below Lua's unpack limit, even
local function each(list, fn)
  for s = 1, #list, STEP do fn(s, math.min(s + STEP - 1, #list)) end
end
local function write(cmd, key, list)
  each(list, function(s, e) redis.call(cmd, key, unpack(list, s, e)) end)
end
local function read(cmd, key, list)
  local out = {}
  each(list, function(s, e)
    for _, v in ipairs(redis.call(cmd, key, unpack(list, s, e))) do out[#out+1] = v end
  end)
  return out
end
-- want appends v to r[list] once (r[set] remembers what it holds).
local function want(r, list, set, v)
  if not r[set][v] then r[set][v] = true; r[list][#r[list]+1] = v end
end
local applied = 0
local rooms, roomOrder = {}, {}
local function room(name)
  local r = rooms[name]
  if r then return r end
  local R = V .. 'r:' .. name .. ':'
  r = {meta = R .. 'meta', msgs = R .. 'msgs', pm = R .. 'pm', lb = R .. 'lb', rx = R .. 'rx', rxn = R .. 'rxn',
    members = R .. 'members',
    ids = {}, idSet = {}, rxs = {}, rxSet = {}, mus = {}, muSet = {}, sends = false,
    newMsgs = {}, total = 0, lbDelta = {}, mem = {}}
  rooms[name] = r
  roomOrder[#roomOrder+1] = name
  return r
end
local sentKey = V .. 'lb:sent'
local boardKey = V .. 'lb:rx'
local n = #ARGV
-- Pass 1: what the records refer to.
local i = 10
while i <= n do
  local op = ARGV[i]
  local width = 6
  if op == 'J' or op == 'L' then width = 4 elseif op == 'A' or op == 'D' then width = 7 end
  if tonumber(ARGV[i+1]) >= cp then
    local r = room(ARGV[i+2])
    if op == 'S' then
      want(r, 'ids', 'idSet', ARGV[i+5])
      r.sends = true
    elseif op == 'A' or op == 'D' then
      want(r, 'ids', 'idSet', ARGV[i+4])
      want(r, 'rxs', 'rxSet', ARGV[i+5])
      want(r, 'mus', 'muSet', ARGV[i+6])
    end
  end
  i = i + width
end
-- Read it: message authors, reaction set members, the newest minute and
-- the buckets of rooms that receive messages.
for _, name in ipairs(roomOrder) do
  local r = rooms[name]
  r.author = {}
  local got = read('HMGET', r.msgs, r.ids)
  for j, id in ipairs(r.ids) do r.author[id] = got[j] end
  r.inRx, r.inRx0 = {}, {}
  got = read('SMISMEMBER', r.rx, r.rxs)
  for j, m in ipairs(r.rxs) do r.inRx[m] = got[j] == 1; r.inRx0[m] = got[j] == 1 end
  r.rxN, r.rxN0 = {}, {}
  got = read('HMGET', r.rxn, r.mus)
  for j, mu in ipairs(r.mus) do r.rxN[mu] = tonumber(got[j] or '0'); r.rxN0[mu] = r.rxN[mu] end
  if r.sends then
    r.newestStr = redis.call('HGET', r.meta, 'newest')
    r.newest = tonumber(r.newestStr or '')
    r.newest0 = r.newestStr
    -- Buckets by minute (a number, a multiple of 60000) with the field
    -- name it has in the hash; oldest is at or below every bucket's minute.
    r.buckets, r.buckets0, r.names = {}, {}, {}
    local kv = redis.call('HGETALL', r.pm)
    for j = 1, #kv, 2 do
      local m = tonumber(kv[j])
      r.buckets[m], r.buckets0[m], r.names[m] = tonumber(kv[j+1]), tonumber(kv[j+1]), kv[j]
      if r.oldest == nil or m < r.oldest then r.oldest = m end
    end
  end
end
-- Pass 2: every record, in order, on the values read.
local sentDelta, sentUsers = {}, {}
local boardDelta, boardUsers = {}, {}
local function bump(delta, users, user, by)
  if delta[user] == nil then delta[user] = 0; users[#users+1] = user end
  delta[user] = delta[user] + by
end
i = 10
while i <= n do
  local op = ARGV[i]
  local width = 6
  if op == 'J' or op == 'L' then width = 4 elseif op == 'A' or op == 'D' then width = 7 end
  if tonumber(ARGV[i+1]) >= cp then
    applied = applied + 1
    local r = rooms[ARGV[i+2]]
    local user = ARGV[i+3]
    if op == 'S' then
      local id = ARGV[i+5]
      if not r.author[id] then
        r.author[id] = user
        r.newMsgs[#r.newMsgs+1] = id
        r.newMsgs[#r.newMsgs+1] = user
        r.total = r.total + 1
        bump(sentDelta, sentUsers, user, -1)
        r.lbDelta[user] = (r.lbDelta[user] or 0) - 1
        local ms = ARGV[i+4]
        local m = tonumber(ms)
        local newest = r.newest
        if newest == nil or m > newest then
          r.newestStr = ms
          local keep = m - span
          if newest ~= nil and r.oldest ~= nil and keep > r.oldest then
            -- Drop the buckets below keep: minute by minute when that is
            -- shorter than visiting every bucket.
            if (keep - r.oldest) / 60000 <= 64 then
              for b = r.oldest, keep - 1, 60000 do r.buckets[b] = nil end
            else
              for b in pairs(r.buckets) do
                if b < keep then r.buckets[b] = nil end
              end
            end
            r.oldest = keep
          end
          r.newest = m
          newest = m
        end
        if m >= newest - span then
          r.buckets[m] = (r.buckets[m] or 0) + 1
          r.names[m] = ms
          if r.oldest == nil or m < r.oldest then r.oldest = m end
        end
      end
    elseif op == 'A' or op == 'D' then
      local author = r.author[ARGV[i+4]]
      -- Reacting to one's own message scores nothing; a user's reactions
      -- on one message beyond the cap are ignored.
      if author and author ~= user then
        local member, mu = ARGV[i+5], ARGV[i+6]
        if op == 'A' and not r.inRx[member] and r.rxN[mu] < MAX_REACTIONS then
          r.inRx[member] = true
          r.rxN[mu] = r.rxN[mu] + 1
          bump(boardDelta, boardUsers, author, -1)
        elseif op == 'D' and r.inRx[member] then
          r.inRx[member] = false
          r.rxN[mu] = r.rxN[mu] - 1
          bump(boardDelta, boardUsers, author, 1)
        end
      end
    else
      r.mem[user] = op == 'J'
    end
  end
  i = i + width
end
-- Pass 3: each key's net change.
-- zadd adds delta[u] to each user's score in key; a score that reaches
-- zero or more is removed (only the reactions board ever comes back up).
local function zadd(key, delta, users)
  local live = {}
  for _, u in ipairs(users) do
    if delta[u] ~= 0 then live[#live+1] = u end
  end
  if #live == 0 then return end
  local old = read('ZMSCORE', key, live)
  local add, rem = {}, {}
  for j, u in ipairs(live) do
    local s = tonumber(old[j] or '0') + delta[u]
    if s >= 0 then
      rem[#rem+1] = u
    else
      add[#add+1] = s
      add[#add+1] = u
    end
  end
  write('ZADD', key, add)
  write('ZREM', key, rem)
end
for _, name in ipairs(roomOrder) do
  local r = rooms[name]
  write('HSET', r.msgs, r.newMsgs)
  if r.total > 0 then redis.call('HINCRBY', r.meta, 'total', r.total) end
  if r.sends then
    if r.newestStr ~= r.newest0 then redis.call('HSET', r.meta, 'newest', r.newestStr) end
    local set, del = {}, {}
    for b, c in pairs(r.buckets) do
      if r.buckets0[b] ~= c then set[#set+1] = r.names[b]; set[#set+1] = c end
    end
    for b in pairs(r.buckets0) do
      if r.buckets[b] == nil then del[#del+1] = r.names[b] end
    end
    write('HDEL', r.pm, del)
    write('HSET', r.pm, set)
  end
  local users = {}
  for u in pairs(r.lbDelta) do users[#users+1] = u end
  zadd(r.lb, r.lbDelta, users)
  local add, rem = {}, {}
  for m, now in pairs(r.inRx) do
    if now ~= r.inRx0[m] then
      if now then add[#add+1] = m else rem[#rem+1] = m end
    end
  end
  write('SADD', r.rx, add)
  write('SREM', r.rx, rem)
  local set, del = {}, {}
  for mu, c in pairs(r.rxN) do
    if c ~= r.rxN0[mu] then
      if c > 0 then set[#set+1] = mu; set[#set+1] = c else del[#del+1] = mu end
    end
  end
  write('HSET', r.rxn, set)
  write('HDEL', r.rxn, del)
  add, rem = {}, {}
  for u, now in pairs(r.mem) do
    if now then add[#add+1] = u else rem[#rem+1] = u end
  end
  write('SADD', r.members, add)
  write('SREM', r.members, rem)
end
zadd(sentKey, sentDelta, sentUsers)
zadd(boardKey, boardDelta, boardUsers)
if nxt > cp then redis.call('HSET', V .. 'cp', part, ARGV[4]) end
return applied
`, "MAX_REACTIONS", strconv.Itoa(events.MaxReactionsPerUser)))

// addScoresScript adds deltas to scores of the sorted set KEYS[1]. ARGV:
// user, delta, … (at most maxScoreArgs). A score that reaches zero or more
// is removed (scores are stored negated; see doc.go). One call reads the
// scores with one ZMSCORE and writes them with one ZADD.
const addScoresScript = `
local key = KEYS[1]
local users = {}
for j = 1, #ARGV, 2 do users[#users+1] = ARGV[j] end
local old = redis.call('ZMSCORE', key, unpack(users))
local add, rem = {}, {}
for j, u in ipairs(users) do
  local score = tonumber(old[j] or '0') + tonumber(ARGV[2*j])
  if score >= 0 then
    rem[#rem+1] = u
  else
    add[#add+1] = score
    add[#add+1] = u
  end
end
if #add > 0 then redis.call('ZADD', key, unpack(add)) end
if #rem > 0 then redis.call('ZREM', key, unpack(rem)) end
return #users
`

// maxScoreArgs bounds the arguments of one addScoresScript call: below
// Lua's unpack limit (8000), and even.
const maxScoreArgs = 4000

// initScript makes sure an active version and an epoch exist. ARGV: 1
// prefix, 2 a fresh epoch (set whenever the active version is created, or
// if the epoch is missing). Returns {active version, epoch}.
var initScript = goredis.NewScript(`
local P = ARGV[1]
local ver = redis.call('GET', P .. 'active')
local ep = redis.call('GET', P .. 'epoch')
if not ver then
  ver = 'v' .. redis.call('INCR', P .. 'seq')
  redis.call('SADD', P .. 'versions', ver)
  redis.call('SET', P .. 'active', ver)
  ep = nil
end
if not ep then
  ep = ARGV[2]
  redis.call('SET', P .. 'epoch', ep)
end
return {ver, ep}
`)

// beginScript registers a new, empty version. ARGV: 1 prefix, 2 the cut
// of an as-of version ("" for a rebuild), 3 the time it is created (Unix
// ms).
var beginScript = goredis.NewScript(`
local P = ARGV[1]
local ver = 'v' .. redis.call('INCR', P .. 'seq')
redis.call('SADD', P .. 'versions', ver)
redis.call('HSET', P .. 'created', ver, ARGV[3])
if ARGV[2] ~= '' then redis.call('HSET', P .. 'asof', ver, ARGV[2]) end
return ver
`)

// sealScript marks as-of version ARGV[2] finished.
var sealScript = goredis.NewScript(`
local P = ARGV[1]
local ver = ARGV[2]
if redis.call('SISMEMBER', P .. 'versions', ver) == 0 or redis.call('HEXISTS', P .. 'asof', ver) == 0 then
  return redis.error_reply('RTSTACK version ' .. ver .. ' is not an as-of version being built')
end
redis.call('SADD', P .. 'sealed', ver)
return 1
`)

// promoteScript flips the active pointer to ARGV[2] if that version's
// checkpoints are at or past the active one's on every partition, and marks
// the old version for dropping. When both versions are bound to a log and
// the logs differ (the topic was recreated), the checkpoints are not
// compared: the old ones are offsets of another log; nor when ARGV[3] is
// '1' (Replace: the old ones are beyond the log's end). Returns {1, old} on a
// flip ({1, ""} when it was already active), {0, active} when the new
// version is still behind.
var promoteScript = goredis.NewScript(`
local P = ARGV[1]
local new = ARGV[2]
if redis.call('SISMEMBER', P .. 'versions', new) == 0 then
  return redis.error_reply('RTSTACK version ' .. new .. ' does not exist')
end
if redis.call('HEXISTS', P .. 'asof', new) == 1 then
  return redis.error_reply('RTSTACK version ' .. new .. ' is an as-of version: never promoted')
end
local old = redis.call('GET', P .. 'active')
if old == new then return {'1', ''} end
if old then
  local oldlog = redis.call('GET', P .. old .. ':log')
  local newlog = redis.call('GET', P .. new .. ':log')
  local otherLog = oldlog and newlog and oldlog ~= newlog
  if not otherLog and ARGV[3] ~= '1' then
    local newcp = {}
    local kv = redis.call('HGETALL', P .. new .. ':cp')
    for j = 1, #kv, 2 do newcp[kv[j]] = tonumber(kv[j+1]) end
    kv = redis.call('HGETALL', P .. old .. ':cp')
    for j = 1, #kv, 2 do
      if (newcp[kv[j]] or 0) < tonumber(kv[j+1]) then return {'0', old} end
    end
  end
  redis.call('SREM', P .. 'versions', old)
  redis.call('SADD', P .. 'dropping', old)
else
  old = ''
end
redis.call('SET', P .. 'active', new)
return {'1', old}
`)

// bindScript binds version ARGV[2] ("" = the active one) to log ARGV[3]
// (topic id @ cluster id) if it is bound to none yet, or to a bare topic id
// that is ARGV[3]'s. Returns {version, bound topic id};
// {"", ""} when there is no active version (Redis lost its data: the Apply
// that re-creates the version binds it).
var bindScript = goredis.NewScript(`
local P = ARGV[1]
local ver = ARGV[2]
if ver == '' then
  ver = redis.call('GET', P .. 'active')
  if not ver then return {'', ''} end
elseif redis.call('SISMEMBER', P .. 'versions', ver) == 0 then
  return redis.error_reply('RTSTACK version ' .. ver .. ' does not exist')
end
local key = P .. ver .. ':log'
if redis.call('GET', key) == string.match(ARGV[3], '^[^@]*') then
  redis.call('SET', key, ARGV[3])
end
redis.call('SET', key, ARGV[3], 'NX')
return {ver, redis.call('GET', key)}
`)

// abandonScript marks a version that is not active for dropping. ARGV: 1
// prefix, 2 version. Returns 1 if it was a known version.
var abandonScript = goredis.NewScript(`
local P = ARGV[1]
local ver = ARGV[2]
if redis.call('GET', P .. 'active') == ver then
  return redis.error_reply('RTSTACK version ' .. ver .. ' is active')
end
local known = redis.call('SREM', P .. 'versions', ver)
redis.call('SADD', P .. 'dropping', ver)
return known
`)

// checkpointsScript returns the checkpoints of ARGV[2] (or of the active
// version when empty) as a flat field/value list.
var checkpointsScript = goredis.NewScript(`
local P = ARGV[1]
local ver = ARGV[2]
if ver == '' then
  ver = redis.call('GET', P .. 'active')
  if not ver then return {} end
end
return redis.call('HGETALL', P .. ver .. ':cp')
`)

// readVersion resolves the version a read script works on: ARGV[n], or the
// active one when that is empty (false if there is none).
const readVersion = `
local function readVersion(P, ver)
  if ver == '' then return redis.call('GET', P .. 'active') end
  if redis.call('SISMEMBER', P .. 'versions', ver) == 0 then
    return redis.error_reply('RTSTACK version ' .. ver .. ' does not exist')
  end
  return ver
end
`

// countersScript returns {total, members, newest, minute, count, ...} of
// room ARGV[2] in version ARGV[3] ("" = the active one).
var countersScript = goredis.NewScript(readVersion + `
local P = ARGV[1]
local ver = readVersion(P, ARGV[3])
if type(ver) == 'table' then return ver end
if not ver then return {'0', 0, ''} end
local R = P .. ver .. ':r:' .. ARGV[2] .. ':'
local meta = redis.call('HMGET', R .. 'meta', 'total', 'newest')
local out = {meta[1] or '0', redis.call('SCARD', R .. 'members'), meta[2] or ''}
local kv = redis.call('HGETALL', R .. 'pm')
for j = 1, #kv do out[#out+1] = kv[j] end
return out
`)

// boardScript returns the top ARGV[3] entries (member, score, ...) of the
// sorted set ARGV[2] (a key suffix) in version ARGV[4] ("" = the active
// one). Scores are stored negated, so ascending order is highest first
// with ties by user id.
var boardScript = goredis.NewScript(readVersion + `
local P = ARGV[1]
local ver = readVersion(P, ARGV[4])
if type(ver) == 'table' then return ver end
if not ver then return {} end
return redis.call('ZRANGE', P .. ver .. ':' .. ARGV[2], 0, tonumber(ARGV[3]) - 1, 'WITHSCORES')
`)

var allScripts = []*goredis.Script{
	applyScript, initScript, beginScript, sealScript, promoteScript, abandonScript,
	bindScript, checkpointsScript, countersScript, boardScript,
}
