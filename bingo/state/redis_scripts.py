"""The Lua scripts that make the Redis store's hot path one round trip each.

Each script reads the clock with Redis's own TIME, so every process and every
machine paces on one clock; times are milliseconds since the epoch. Pure text: no
Redis client here. Scripts touch only the keys they are given, except the
Responses index, which deletes the records it evicts (no Redis Cluster support).
"""
from __future__ import annotations

_NOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
"""

# The n-th oldest member's score in a sorted set, as the wait until it leaves.
_NTH_SCORE = """
local function nth_score(key, n)
  return tonumber(redis.call('ZRANGE', key, n, n, 'WITHSCORES')[2])
end
"""

# KEYS: leases, turns, health; ARGV: concurrency, rpm, lease_ms, window_ms, lease id.
# Returns 0 when leased, else the milliseconds until the soonest slot frees. The
# client retries a script whose reply was lost with the same lease id: a lease
# already held answers 0 again instead of a "full" that would strand it.
TAKE_SLOT = _NOW + _NTH_SCORE + """
local concurrency, rpm = tonumber(ARGV[1]), tonumber(ARGV[2])
local lease_ms, window_ms = tonumber(ARGV[3]), tonumber(ARGV[4])
local wait = 0
local health = redis.call('GET', KEYS[3])
if health and cjson.decode(health).state == 'cooling' then
  wait = math.max(wait, redis.call('PTTL', KEYS[3]))
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZSCORE', KEYS[1], ARGV[5]) then
  return 0  -- a retry after a lost reply: this lease was granted already
end
local held = redis.call('ZCARD', KEYS[1])
if held >= concurrency then
  wait = math.max(wait, nth_score(KEYS[1], held - concurrency) - now)
end
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - window_ms)
local started = redis.call('ZCARD', KEYS[2])
if started >= rpm then
  wait = math.max(wait, nth_score(KEYS[2], started - rpm) + window_ms - now)
end
if wait > 0 then
  return wait
end
redis.call('ZADD', KEYS[1], now + lease_ms, ARGV[5])
redis.call('ZADD', KEYS[2], now, ARGV[5])
if redis.call('PTTL', KEYS[1]) < lease_ms then
  redis.call('PEXPIRE', KEYS[1], lease_ms)
end
redis.call('PEXPIRE', KEYS[2], window_ms)
return 0
"""

# KEYS: leases, turns; ARGV: window_ms. Returns {in flight, turns in the window}.
USAGE = _NOW + """
return {redis.call('ZCOUNT', KEYS[1], '(' .. now, '+inf'),
        redis.call('ZCOUNT', KEYS[2], '(' .. (now - tonumber(ARGV[1])), '+inf')}
"""

# KEYS: hits; ARGV: rpm, window_ms, member. Returns 0 when counted, else the wait (ms).
HIT_KEY = _NOW + _NTH_SCORE + """
local rpm, window_ms = tonumber(ARGV[1]), tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window_ms)
local hits = redis.call('ZCARD', KEYS[1])
if hits >= rpm then
  return nth_score(KEYS[1], hits - rpm) + window_ms - now
end
redis.call('ZADD', KEYS[1], now, ARGV[3])
redis.call('PEXPIRE', KEYS[1], window_ms)
return 0
"""

# KEYS: lock; ARGV: holder. Deletes the lock only if this holder still has it.
UNLOCK = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""

# KEYS: record, index, sequence; ARGV: id, JSON, kept, record key prefix.
# The index is a capped sorted set in put order: past `kept` the oldest records go.
PUT_RESPONSE = """
local seq = redis.call('INCR', KEYS[3])
redis.call('SET', KEYS[1], ARGV[2])
redis.call('ZADD', KEYS[2], seq, ARGV[1])
local excess = redis.call('ZCARD', KEYS[2]) - tonumber(ARGV[3])
if excess > 0 then
  local evicted = redis.call('ZPOPMIN', KEYS[2], excess)
  for i = 1, #evicted, 2 do
    redis.call('DEL', ARGV[4] .. evicted[i])
  end
end
return 0
"""

# KEYS: record, index; ARGV: id. Returns 1 when a record was deleted.
DELETE_RESPONSE = """
redis.call('ZREM', KEYS[2], ARGV[1])
return redis.call('DEL', KEYS[1])
"""
