package presence

import "github.com/redis/go-redis/v9"

// The scripts share these conventions. Keys:
//
//	KEYS[1] conns   ZSET connID → deadline, one (room, user)
//	KEYS[2] room    ZSET user → latest deadline of the user's connections
//	KEYS[3] user    ZSET roomMember..connID → deadline, one user, all rooms
//	KEYS[4] expiry  ZSET expiryMember..connID → deadline, all connections
//
// Arguments: ARGV[1] connID, ARGV[2] ttl ms (join) or "1" to leave only if
// expired (leave), ARGV[3] user, ARGV[4] room, ARGV[5] the user-set member
// prefix, ARGV[6] the expiry-set member prefix, ARGV[7] the events channel.
//
// Time is always Redis's (TIME), never a gateway's clock, so gateways whose
// clocks disagree still agree on who expired. A user is online in a room when
// its room score is in the future. Expired connections of the (room, user)
// being touched are purged first, so a crashed gateway's leftovers never
// keep a user online.
const luaCommon = `
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function purge(now)
  local dead = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now)
  for _, c in ipairs(dead) do
    redis.call('ZREM', KEYS[1], c)
    redis.call('ZREM', KEYS[3], ARGV[5] .. c)
    redis.call('ZREM', KEYS[4], ARGV[6] .. c)
  end
end
local function announce(now)
  local users = redis.call('ZRANGEBYSCORE', KEYS[2], '(' .. now, '+inf')
  redis.call('PUBLISH', ARGV[7], cjson.encode({room = ARGV[4], users = users}))
end
`

// joinScript adds or refreshes a connection; it announces the room when the
// user was not online in it before. Returns 1 when it announced. With
// ARGV[8] == "refresh" it only refreshes a connection that is still there
// and returns 2 when it is not: a heartbeat racing a Leave must not bring
// the connection back.
var joinScript = redis.NewScript(luaCommon + `
if ARGV[8] == 'refresh' and not redis.call('ZSCORE', KEYS[1], ARGV[1]) then
  return 2
end
local now = now_ms()
purge(now)
local deadline = now + tonumber(ARGV[2])
local before = redis.call('ZSCORE', KEYS[2], ARGV[3])
redis.call('ZADD', KEYS[1], deadline, ARGV[1])
redis.call('ZADD', KEYS[2], 'GT', deadline, ARGV[3])
redis.call('ZADD', KEYS[3], deadline, ARGV[5] .. ARGV[1])
redis.call('ZADD', KEYS[4], deadline, ARGV[6] .. ARGV[1])
if (not before) or tonumber(before) <= now then
  announce(now)
  return 1
end
return 0
`)

// leaveScript removes a connection (with ARGV[2] == "1", only if its
// deadline passed: the sweeper must not remove a connection refreshed in the
// meantime). It announces the room when the user's last connection there
// went. Returns 1 when it announced.
var leaveScript = redis.NewScript(luaCommon + `
local now = now_ms()
local s = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not s then
  redis.call('ZREM', KEYS[3], ARGV[5] .. ARGV[1])
  redis.call('ZREM', KEYS[4], ARGV[6] .. ARGV[1])
  return 0
end
if ARGV[2] == '1' and tonumber(s) > now then
  return 0
end
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[5] .. ARGV[1])
redis.call('ZREM', KEYS[4], ARGV[6] .. ARGV[1])
purge(now)
local top = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
if #top == 0 then
  local was = redis.call('ZSCORE', KEYS[2], ARGV[3])
  redis.call('ZREM', KEYS[2], ARGV[3])
  if was then
    announce(now)
    return 1
  end
  return 0
end
redis.call('ZADD', KEYS[2], 'XX', top[2], ARGV[3])
return 0
`)

// onlineScript returns the users of room KEYS[1] whose deadline is in the
// future.
var onlineScript = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
return redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. now, '+inf')
`)

// countLiveScript counts the members of KEYS[1] whose deadline is in the
// future.
var countLiveScript = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
return redis.call('ZCOUNT', KEYS[1], '(' .. now, '+inf')
`)

// expiredScript lists up to ARGV[1] members of KEYS[1] whose deadline passed.
var expiredScript = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
return redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[1]))
`)
