-- Give back a reservation whose publish certainly failed, only if it is still the same
-- request; or (ARGV[3] = '1') void a request whose reserve call timed out, so that the call,
-- should Redis still run it later, takes nothing.
-- KEYS[1] stock counter, KEYS[2] participants hash, KEYS[3] holds, KEYS[4] void marker
-- ARGV[1] user id, ARGV[2] request id, ARGV[3] '1' to leave a void marker, ARGV[4] its TTL (s)
-- Returns 1 if released, 0 if the user's state belongs to another request or is no longer
-- pending (never returns stock that another request holds).
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
return 1
