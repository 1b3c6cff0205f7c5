-- Record that requests of one coupon are persisted in MySQL.
-- KEYS[1] participants hash, KEYS[2] issued counter
-- ARGV: per request three values: user id, request id, issued state
-- A user whose state belongs to a different request is left untouched, as is one already
-- issued. Returns how many states moved to issued.
local moved = 0
for i = 1, #ARGV, 3 do
  local user, request = ARGV[i], ARGV[i + 1]
  local state = redis.call('HGET', KEYS[1], user)
  if not state or (string.sub(state, 3, 2 + string.len(request)) == request
                   and string.sub(state, 1, 2) ~= 'I|') then
    redis.call('HSET', KEYS[1], user, ARGV[i + 2])
    moved = moved + 1
  end
end
if moved > 0 then
  redis.call('INCRBY', KEYS[2], moved)
end
return moved
