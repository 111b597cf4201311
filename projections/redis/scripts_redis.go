package redis

import goredis "github.com/redis/go-redis/v9"

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
//	A off room user mid member     reaction added (member = reaction set entry)
//	D off room user mid member     reaction removed
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
var applyScript = goredis.NewScript(`
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
local applied = 0
local rooms = {} -- per room of this chunk: its key names and newest minute
local function room(name)
  local r = rooms[name]
  if r then return r end
  local R = V .. 'r:' .. name .. ':'
  r = {meta = R .. 'meta', msgs = R .. 'msgs', pm = R .. 'pm', lb = R .. 'lb', rx = R .. 'rx', members = R .. 'members'}
  rooms[name] = r
  return r
end
local sent = V .. 'lb:sent'
local board = V .. 'lb:rx'
local i = 10
local n = #ARGV
while i <= n do
  local op = ARGV[i]
  local off = tonumber(ARGV[i+1])
  local user = ARGV[i+3]
  if op == 'S' then
    if off >= cp then
      applied = applied + 1
      local r = room(ARGV[i+2])
      if redis.call('HSETNX', r.msgs, ARGV[i+5], user) == 1 then
        redis.call('HINCRBY', r.meta, 'total', 1)
        redis.call('ZINCRBY', sent, -1, user)
        redis.call('ZINCRBY', r.lb, -1, user)
        local ms = ARGV[i+4]
        local m = tonumber(ms)
        if not r.loaded then
          r.newest = tonumber(redis.call('HGET', r.meta, 'newest') or '')
          r.loaded = true
        end
        local newest = r.newest
        if newest == nil or m > newest then
          redis.call('HSET', r.meta, 'newest', ms)
          if newest ~= nil then
            local keep = m - span
            for _, f in ipairs(redis.call('HKEYS', r.pm)) do
              if tonumber(f) < keep then redis.call('HDEL', r.pm, f) end
            end
          end
          r.newest = m
          newest = m
        end
        if m >= newest - span then
          redis.call('HINCRBY', r.pm, ms, 1)
        end
      end
    end
    i = i + 6
  elseif op == 'A' or op == 'D' then
    if off >= cp then
      applied = applied + 1
      local r = room(ARGV[i+2])
      local author = redis.call('HGET', r.msgs, ARGV[i+4])
      if author then
        if op == 'A' then
          if redis.call('SADD', r.rx, ARGV[i+5]) == 1 then
            redis.call('ZINCRBY', board, -1, author)
          end
        elseif redis.call('SREM', r.rx, ARGV[i+5]) == 1 then
          if tonumber(redis.call('ZINCRBY', board, 1, author)) >= 0 then
            redis.call('ZREM', board, author)
          end
        end
      end
    end
    i = i + 6
  else
    if off >= cp then
      applied = applied + 1
      local r = room(ARGV[i+2])
      if op == 'J' then
        redis.call('SADD', r.members, user)
      else
        redis.call('SREM', r.members, user)
      end
    end
    i = i + 4
  end
end
if nxt > cp then redis.call('HSET', V .. 'cp', part, ARGV[4]) end
return applied
`)

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

// beginScript registers a new, empty version. ARGV: 1 prefix.
var beginScript = goredis.NewScript(`
local P = ARGV[1]
local ver = 'v' .. redis.call('INCR', P .. 'seq')
redis.call('SADD', P .. 'versions', ver)
return ver
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

// countersScript returns {total, members, newest, minute, count, ...} of
// room ARGV[2] in the active version.
var countersScript = goredis.NewScript(`
local P = ARGV[1]
local ver = redis.call('GET', P .. 'active')
if not ver then return {'0', 0, ''} end
local R = P .. ver .. ':r:' .. ARGV[2] .. ':'
local meta = redis.call('HMGET', R .. 'meta', 'total', 'newest')
local out = {meta[1] or '0', redis.call('SCARD', R .. 'members'), meta[2] or ''}
local kv = redis.call('HGETALL', R .. 'pm')
for j = 1, #kv do out[#out+1] = kv[j] end
return out
`)

// boardScript returns the top ARGV[3] entries (member, score, ...) of the
// sorted set ARGV[2] (a key suffix) in the active version. Scores are stored
// negated, so ascending order is highest first with ties by user id.
var boardScript = goredis.NewScript(`
local P = ARGV[1]
local ver = redis.call('GET', P .. 'active')
if not ver then return {} end
return redis.call('ZRANGE', P .. ver .. ':' .. ARGV[2], 0, tonumber(ARGV[3]) - 1, 'WITHSCORES')
`)

var allScripts = []*goredis.Script{
	applyScript, initScript, beginScript, promoteScript, abandonScript,
	bindScript, checkpointsScript, countersScript, boardScript,
}
