-- Rebuild a coupon's Redis state from MySQL's holders (reconciliation repair).
-- KEYS[1] meta hash, KEYS[2] stock counter, KEYS[3] participants hash, KEYS[4] issued counter
-- ARGV[1] total, ARGV[2] starts_ms, ARGV[3] ends_ms, ARGV[4] expiry_days,
-- ARGV[5] MySQL's available quantity, ARGV[6] '1' to take stock for each restored holder,
-- then pairs of (user id, issued state).
-- A coupon Redis lost entirely is loaded with MySQL's available stock, which already counts
-- every holder; a coupon Redis still has gives one unit of stock per holder it did not know
-- (never below zero). A user Redis knows is left alone.
-- Returns {1 if the coupon was loaded now else 0, holders restored}.
local loaded = 0
if redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('HSET', KEYS[1], 'total', ARGV[1], 'starts_ms', ARGV[2], 'ends_ms', ARGV[3],
    'expiry_days', ARGV[4])
  redis.call('SET', KEYS[2], ARGV[5])
  loaded = 1
end
local restored = 0
for i = 7, #ARGV, 2 do
  if redis.call('HSETNX', KEYS[3], ARGV[i], ARGV[i + 1]) == 1 then
    restored = restored + 1
    redis.call('INCR', KEYS[4])
    if loaded == 0 and ARGV[6] == '1' then
      if tonumber(redis.call('GET', KEYS[2]) or '0') > 0 then
        redis.call('DECR', KEYS[2])
      end
    end
  end
end
return {loaded, restored}
