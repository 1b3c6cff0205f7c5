-- Give back a reservation whose publish failed, only if it is still the same request.
-- KEYS[1] stock counter, KEYS[2] participants hash
-- ARGV[1] user id, ARGV[2] request id
-- Returns 1 if released, 0 if the user's state belongs to another request or is no longer
-- pending (never returns stock that another request holds).
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
