-- Queue a webhook's new feed entries and advance its cursor, in one step: a dispatcher killed
-- midway either queued them and moved the cursor, or did neither (nothing lost, nothing twice).
-- KEYS: webhook hash, order zset, due zset, deliveries hash.
-- ARGV: the cursor read from, the new cursor, now, then event id / delivery JSON pairs.
-- Returns how many were queued; -1: the webhook is gone; -2: another dispatcher moved the
-- cursor first (it queued these).
if redis.call("EXISTS", KEYS[1]) == 0 then
  return -1
end
if (redis.call("HGET", KEYS[1], "cursor") or "") ~= ARGV[1] then
  return -2
end
local added = 0
for i = 4, #ARGV, 2 do
  local id = ARGV[i]
  if not redis.call("ZSCORE", KEYS[2], id) then
    local seq = redis.call("HINCRBY", KEYS[1], "seq", 1)
    redis.call("ZADD", KEYS[2], seq, id)
    redis.call("ZADD", KEYS[3], ARGV[3], id)
    redis.call("HSET", KEYS[4], id, ARGV[i + 1])
    added = added + 1
  end
end
redis.call("HSET", KEYS[1], "cursor", ARGV[2])
return added
