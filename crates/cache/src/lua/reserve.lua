-- Decide one issue request atomically.
-- KEYS[1] meta hash, KEYS[2] stock counter, KEYS[3] participants hash (user -> state),
-- KEYS[4] holds (sorted set: request id -> reserved at, ms) of reservations whose publish is
-- not decided yet, KEYS[5] this request's void marker
-- ARGV[1] user id, ARGV[2] state to record if accepted, ARGV[3] now (epoch ms),
-- ARGV[4] request id, ARGV[5] holds reserved at or before this (ms) are abandoned
-- Returns {outcome[, detail]}: UNKNOWN | DUPLICATE,<state> | NOT_OPEN | CLOSED | SOLD_OUT |
-- HELD | VOID | ACCEPTED,<remaining stock>.
local window = redis.call('HMGET', KEYS[1], 'starts_ms', 'ends_ms')
if not window[1] then
  return {'UNKNOWN'}
end
-- A user who already took part is told their real state first, whatever else holds now.
local existing = redis.call('HGET', KEYS[3], ARGV[1])
if existing then
  return {'DUPLICATE', existing}
end
local now = tonumber(ARGV[3])
if now < tonumber(window[1]) then
  return {'NOT_OPEN'}
end
if now >= tonumber(window[2]) then
  return {'CLOSED'}
end
local stock = tonumber(redis.call('GET', KEYS[2]) or '0')
if stock <= 0 then
  -- Sold out only if no unit is merely held by a publish that may still fail and give it
  -- back. A hold older than the longest publish wait belongs to an API that died.
  redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', ARGV[5])
  if redis.call('ZCARD', KEYS[4]) > 0 then
    return {'HELD'}
  end
  return {'SOLD_OUT'}
end
-- The API gave up on this very request (its call timed out) before Redis ran it.
if redis.call('EXISTS', KEYS[5]) == 1 then
  return {'VOID'}
end
local remaining = redis.call('DECR', KEYS[2])
redis.call('HSET', KEYS[3], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[4], now, ARGV[4])
return {'ACCEPTED', tostring(remaining)}
