-- Record that a request is persisted in MySQL.
-- KEYS[1] participants hash, KEYS[2] issued counter
-- ARGV[1] user id, ARGV[2] request id, ARGV[3] issued state
-- Returns 1 if the state moved to issued, 0 if it already was, -1 if the user's state belongs
-- to a different request (left untouched).
local state = redis.call('HGET', KEYS[1], ARGV[1])
if state then
  if string.sub(state, 3, 2 + string.len(ARGV[2])) ~= ARGV[2] then
    return -1
  end
  if string.sub(state, 1, 2) == 'I|' then
    return 0
  end
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
redis.call('INCR', KEYS[2])
return 1
