-- Decide one issue request atomically.
-- KEYS[1] meta hash, KEYS[2] stock counter, KEYS[3] participants hash (user -> state),
-- KEYS[4] holds (sorted set: request id -> reserved at, ms) of reservations whose publish is
-- not decided yet, KEYS[5] this request's void marker
-- ARGV[1] user id, ARGV[2] state to record if accepted, ARGV[3] now (epoch ms),
-- ARGV[4] request id, ARGV[5] holds reserved at or before this (ms) are abandoned,
-- ARGV[6] the sold-out gate's lease (ms; 0: the caller keeps no gate)
-- With abuse limits on (ReserveCall::limited): KEYS[6] the coupon's limits hash (field
-- 'u:<user>' and 'c:<client>': GCRA theoretical arrival times, ms), ARGV[7] per user, ARGV[8]
-- per client (0: no limit), ARGV[9] window ms: defaults, each overridden by the event's meta
-- field if it has one; ARGV[10] the client.
-- Returns {outcome[, detail]}: UNKNOWN | RATE_LIMITED,<user|client>,<ms until allowed> |
-- DUPLICATE,<state> | NOT_OPEN | CLOSED | SOLD_OUT,<generation> | HELD | VOID |
-- ACCEPTED,<remaining stock>.
-- The sold-out gate (docs/scaling.md, "The sold-out gate"): an API that hears SOLD_OUT may
-- answer SOLD_OUT itself, for ARGV[6] ms, to every user outside the participants it read under
-- the same <generation>. The meta hash's 'generation' changes whenever stock comes back or a
-- participant is added other than by a reservation, so a reader sees when its copy is stale;
-- 'gate_until_ms' is the latest lease any API may still trust, and 'quarantined' counts units
-- given back before it (release.lua): they are offered again only after it, so no new
-- participant appears while a gate may still answer from a copy that lacks them.
-- One read of the meta hash serves the window and the event's own limits. The limits cost one
-- read and one write more per request, no more: a command called from a script costs far more
-- than its own work, a write most (docs/benchmarks.md).
local window = redis.call('HMGET', KEYS[1], 'starts_ms', 'ends_ms', 'rl_user', 'rl_client',
  'rl_window_ms', 'generation', 'gate_until_ms', 'quarantined')
if not window[1] then
  return {'UNKNOWN'}
end
-- Limits first: a caller over them is told nothing else and changes nothing else. GCRA: a
-- limit of N per window lets a burst of N through, then one every window/N; a refused request
-- does not count. The API's clock (ARGV[3]), as for the window and the holds: instances' skew
-- (NTP, milliseconds) is small beside a window. Once the event is over every answer is CLOSED,
-- which takes nothing, so nothing is counted: the limits hash, which load.lua set to expire
-- after the end, is never written again.
local now = tonumber(ARGV[3])
if KEYS[6] and now < tonumber(window[2]) then
  local period = tonumber(window[5] or ARGV[9])
  local per_user = tonumber(window[3] or ARGV[7])
  local per_client = tonumber(window[4] or ARGV[8])
  local user_field, client_field = 'u:' .. ARGV[1], 'c:' .. ARGV[10]
  local tats = redis.call('HMGET', KEYS[6], user_field, client_field)
  local user_tat, client_tat, refused, wait = nil, nil, nil, 0
  if per_user > 0 then
    user_tat = math.max(tonumber(tats[1]) or 0, now) + period / per_user
    if user_tat - now > period then
      refused, wait = 'user', user_tat - now - period
    end
  end
  if per_client > 0 then
    client_tat = math.max(tonumber(tats[2]) or 0, now) + period / per_client
    if client_tat - now > period then
      refused, wait = refused or 'client', math.max(wait, client_tat - now - period)
    end
  end
  if refused then
    return {'RATE_LIMITED', refused, tostring(math.ceil(wait))}
  end
  -- Both subjects in one write.
  if user_tat and client_tat then
    redis.call('HSET', KEYS[6], user_field, user_tat, client_field, client_tat)
  elseif user_tat or client_tat then
    redis.call('HSET', KEYS[6], user_tat and user_field or client_field, user_tat or client_tat)
  end
end
-- A user who already took part is told their real state first, whatever else holds now.
local existing = redis.call('HGET', KEYS[3], ARGV[1])
if existing then
  return {'DUPLICATE', existing}
end
if now < tonumber(window[1]) then
  return {'NOT_OPEN'}
end
if now >= tonumber(window[2]) then
  return {'CLOSED'}
end
local stock = tonumber(redis.call('GET', KEYS[2]) or '0')
local quarantined = tonumber(window[8] or '0')
if quarantined > 0 then
  if stock > 0 and now < tonumber(window[7] or '0') then
    -- Given back while a gate may still answer SOLD_OUT without this request's user: not
    -- sold out, not offered yet either.
    return {'HELD'}
  end
  -- Every lease has ended: offer the units again, under a new generation (a copy read
  -- during the quarantine lacks whoever takes them now).
  redis.call('HDEL', KEYS[1], 'quarantined')
  redis.call('HINCRBY', KEYS[1], 'generation', 1)
end
if stock <= 0 then
  -- Sold out only if no unit is merely held by a publish that may still fail and give it
  -- back. A hold older than the longest publish wait belongs to an API that died.
  redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', ARGV[5])
  if redis.call('ZCARD', KEYS[4]) > 0 then
    return {'HELD'}
  end
  -- Announce the caller's lease, with room for clocks that differ between APIs; written at
  -- most about once per lease, not per answer.
  local lease = tonumber(ARGV[6])
  if lease > 0 and tonumber(window[7] or '0') < now + lease * 1.5 then
    redis.call('HSET', KEYS[1], 'gate_until_ms', string.format('%d', now + lease * 2))
  end
  return {'SOLD_OUT', window[6] or '0'}
end
-- The API gave up on this very request (its call timed out) before Redis ran it.
if redis.call('EXISTS', KEYS[5]) == 1 then
  return {'VOID'}
end
local remaining = redis.call('DECR', KEYS[2])
redis.call('HSET', KEYS[3], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[4], now, ARGV[4])
return {'ACCEPTED', tostring(remaining)}
