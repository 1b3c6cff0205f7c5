-- Rebuild a coupon's Redis state from the records (reconciliation repair, warm-up after a loss).
-- KEYS[1] meta hash, KEYS[2] stock counter, KEYS[3] participants hash, KEYS[4] issued counter,
-- KEYS[5] abuse limits hash
-- ARGV[1] total, ARGV[2] starts_ms, ARGV[3] ends_ms, ARGV[4] expiry_days,
-- ARGV[5] stock to load if the coupon is missing, ARGV[6] '1' to take stock for each restored
-- participant, ARGV[7..9] the event's own abuse limits (per user, per client, window ms; ''
-- keeps the default), ARGV[10] when the limits hash expires (epoch ms, as load.lua), then
-- pairs of (user id, state: issued 'I|…' or pending 'P|…').
-- A coupon Redis lost entirely is loaded with ARGV[5], which the caller computed to count
-- every participant given (total − MySQL holders − requests in flight); a coupon Redis still
-- has gives one unit of stock per participant it did not know (never below zero). A user
-- Redis knows is left alone. Only issued states count in the issued counter.
-- A coupon loaded here starts a generation of its own, and restored participants start a
-- new one (reserve.lua, the sold-out gate): a gate's copy of the participants is then stale.
-- Returns {1 if the coupon was loaded now else 0, participants restored}.
local loaded = 0
if redis.call('EXISTS', KEYS[1]) == 0 then
  local time = redis.call('TIME')
  redis.call('HSET', KEYS[1], 'total', ARGV[1], 'starts_ms', ARGV[2], 'ends_ms', ARGV[3],
    'expiry_days', ARGV[4], 'generation', time[1] .. string.format('%06d', tonumber(time[2])))
  for i, field in ipairs({'rl_user', 'rl_client', 'rl_window_ms'}) do
    if ARGV[6 + i] ~= '' then
      redis.call('HSET', KEYS[1], field, ARGV[6 + i])
    end
  end
  redis.call('SET', KEYS[2], ARGV[5])
  redis.call('HSET', KEYS[5], '_', ARGV[10])
  redis.call('PEXPIREAT', KEYS[5], ARGV[10])
  loaded = 1
end
local restored = 0
for i = 11, #ARGV, 2 do
  if redis.call('HSETNX', KEYS[3], ARGV[i], ARGV[i + 1]) == 1 then
    restored = restored + 1
    if string.sub(ARGV[i + 1], 1, 2) == 'I|' then
      redis.call('INCR', KEYS[4])
    end
    if loaded == 0 and ARGV[6] == '1' then
      if tonumber(redis.call('GET', KEYS[2]) or '0') > 0 then
        redis.call('DECR', KEYS[2])
      end
    end
  end
end
if restored > 0 then
  redis.call('HINCRBY', KEYS[1], 'generation', 1)
end
return {loaded, restored}
