-- Give back a reservation whose publish certainly failed, only if it is still the same
-- request; or (ARGV[3] = '1') void a request whose reserve call timed out, so that the call,
-- should Redis still run it later, takes nothing.
-- KEYS[1] stock counter, KEYS[2] participants hash, KEYS[3] holds, KEYS[4] void marker,
-- KEYS[5] meta hash
-- ARGV[1] user id, ARGV[2] request id, ARGV[3] '1' to leave a void marker, ARGV[4] its TTL (s),
-- ARGV[5] now (epoch ms)
-- Returns 1 if released, 0 if the user's state belongs to another request or is no longer
-- pending (never returns stock that another request holds).
-- Stock that comes back starts a new generation; while a sold-out gate's lease may still run
-- it is quarantined until the lease ends (reserve.lua explains why).
if ARGV[3] == '1' then
  redis.call('SET', KEYS[4], '1', 'EX', ARGV[4])
end
redis.call('ZREM', KEYS[3], ARGV[2])
local state = redis.call('HGET', KEYS[2], ARGV[1])
if not state then
  return 0
end
if string.sub(state, 1, 2) ~= 'P|' or string.sub(state, 3, 2 + string.len(ARGV[2])) ~= ARGV[2] then
  return 0
end
redis.call('HDEL', KEYS[2], ARGV[1])
redis.call('INCR', KEYS[1])
redis.call('HINCRBY', KEYS[5], 'generation', 1)
if tonumber(ARGV[5]) < tonumber(redis.call('HGET', KEYS[5], 'gate_until_ms') or '0') then
  redis.call('HINCRBY', KEYS[5], 'quarantined', 1)
end
return 1
