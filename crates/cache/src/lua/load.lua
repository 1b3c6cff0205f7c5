-- Load a coupon's stock and window, once. Repeating it never resets a live event.
-- KEYS[1] meta hash, KEYS[2] stock counter, KEYS[3] abuse limits hash
-- ARGV[1] total, ARGV[2] starts_ms, ARGV[3] ends_ms, ARGV[4] expiry_days, ARGV[5..7] the
-- event's own abuse limits (per user, per client, window ms; '' keeps the default), ARGV[8]
-- when the limits hash expires (epoch ms)
-- Returns {'LOADED'|'EXISTING', current stock}.
if redis.call('EXISTS', KEYS[1]) == 1 then
  return {'EXISTING', redis.call('GET', KEYS[2]) or '0'}
end
-- A generation of its own (reserve.lua, the sold-out gate): unlike any a coupon lost and
-- loaded again had before.
local time = redis.call('TIME')
redis.call('HSET', KEYS[1], 'total', ARGV[1], 'starts_ms', ARGV[2], 'ends_ms', ARGV[3],
  'expiry_days', ARGV[4], 'generation', time[1] .. string.format('%06d', tonumber(time[2])))
for i, field in ipairs({'rl_user', 'rl_client', 'rl_window_ms'}) do
  if ARGV[4 + i] ~= '' then
    redis.call('HSET', KEYS[1], field, ARGV[4 + i])
  end
end
redis.call('SET', KEYS[2], ARGV[1])
-- reserve.lua writes the limits hash only while the event runs, so created here with its
-- expiry it never outlives the event by more than that margin (a hash reserve.lua created
-- would never expire). '_' is no user's or client's field.
redis.call('HSET', KEYS[3], '_', ARGV[8])
redis.call('PEXPIREAT', KEYS[3], ARGV[8])
return {'LOADED', ARGV[1]}
