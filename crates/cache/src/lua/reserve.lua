-- Decide one issue request atomically.
-- KEYS[1] meta hash, KEYS[2] stock counter, KEYS[3] participants hash (user -> state),
-- KEYS[4] holds (sorted set: request id -> reserved at, ms) of reservations whose publish is
-- not decided yet, KEYS[5] this request's void marker
-- ARGV[1] user id, ARGV[2] state to record if accepted, ARGV[3] now (epoch ms),
-- ARGV[4] request id, ARGV[5] holds reserved at or before this (ms) are abandoned
-- With abuse limits on (ReserveCall::limited): KEYS[6] the user's limit, KEYS[7] the client's
-- (each a GCRA theoretical arrival time, ms), ARGV[6] per user, ARGV[7] per client (0: no
-- limit), ARGV[8] window ms: defaults, each overridden by the event's meta field if it has one.
-- Returns {outcome[, detail]}: UNKNOWN | RATE_LIMITED,<user|client>,<ms until allowed> |
-- DUPLICATE,<state> | NOT_OPEN | CLOSED | SOLD_OUT | HELD | VOID | ACCEPTED,<remaining stock>.
-- One read of the meta hash serves the window and the event's own limits (a call fewer per
-- request than two reads: the limits' cost is measured, docs/benchmarks.md).
local window = redis.call('HMGET', KEYS[1], 'starts_ms', 'ends_ms', 'rl_user', 'rl_client',
  'rl_window_ms')
if not window[1] then
  return {'UNKNOWN'}
end
-- Limits first: a caller over them is told nothing else and changes nothing else. GCRA: a
-- limit of N per window lets a burst of N through, then one every window/N; a refused request
-- does not count. Redis's clock, not the API's, so that every instance counts alike.
if KEYS[6] then
  local period = tonumber(window[5] or ARGV[8])
  local clock = redis.call('TIME')
  local now_ms = tonumber(clock[1]) * 1000 + tonumber(clock[2]) / 1000
  -- Both arrival times in one read (same hash tag, same slot).
  local tats = redis.call('MGET', KEYS[6], KEYS[7])
  local subjects = {
    {KEYS[6], tonumber(window[3] or ARGV[6]), 'user', tats[1]},
    {KEYS[7], tonumber(window[4] or ARGV[7]), 'client', tats[2]},
  }
  local counted, refused, wait = {}, nil, 0
  for _, subject in ipairs(subjects) do
    if subject[2] > 0 then
      local tat = math.max(tonumber(subject[4] or '0'), now_ms)
      local next_tat = tat + period / subject[2]
      local over = next_tat - now_ms - period
      if over > 0 then
        refused = refused or subject[3]
        wait = math.max(wait, over)
      else
        counted[#counted + 1] = {subject[1], next_tat}
      end
    end
  end
  if refused then
    return {'RATE_LIMITED', refused, tostring(math.ceil(wait))}
  end
  for _, count in ipairs(counted) do
    redis.call('SET', count[1], string.format('%.3f', count[2]), 'PX',
      math.ceil(count[2] - now_ms))
  end
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
