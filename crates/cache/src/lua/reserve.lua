-- Decide one issue request atomically.
-- KEYS[1] meta hash, KEYS[2] stock counter, KEYS[3] participants hash (user -> state)
-- ARGV[1] user id, ARGV[2] state to record if accepted, ARGV[3] now (epoch ms)
-- Returns {outcome[, detail]}: UNKNOWN | DUPLICATE,<state> | NOT_OPEN | CLOSED | SOLD_OUT |
-- ACCEPTED,<remaining stock>.
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
  return {'SOLD_OUT'}
end
local remaining = redis.call('DECR', KEYS[2])
redis.call('HSET', KEYS[3], ARGV[1], ARGV[2])
return {'ACCEPTED', tostring(remaining)}
