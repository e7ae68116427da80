-- Record one delivery attempt's outcome, atomically with its counters and history.
-- KEYS: webhook hash, order zset, due zset, deliveries hash, attempts hash, stats hash, history.
-- ARGV: event id, outcome ("delivered" | "retry" | "dead"), next try (epoch s), paused until
-- (epoch s), history entry (JSON), history length kept, now (ISO text).
-- Returns 1, or 0 when the webhook or the delivery is gone (removed, or recorded already).
local id = ARGV[1]
if redis.call("EXISTS", KEYS[1]) == 0 or not redis.call("ZSCORE", KEYS[2], id) then
  return 0
end
local outcome = ARGV[2]
if outcome == "delivered" or outcome == "dead" then
  redis.call("ZREM", KEYS[2], id)
  redis.call("ZREM", KEYS[3], id)
  redis.call("HDEL", KEYS[4], id)
  redis.call("HDEL", KEYS[5], id)
end
if outcome == "delivered" then
  redis.call("HINCRBY", KEYS[6], "delivered", 1)
  redis.call("HSET", KEYS[6], "last_delivered_at", ARGV[7])
  redis.call("HSET", KEYS[1], "consecutive_failures", 0, "paused_until", 0)
else
  redis.call("HINCRBY", KEYS[6], "failed_attempts", 1)
  redis.call("HSET", KEYS[6], "last_failure_at", ARGV[7])
  redis.call("HINCRBY", KEYS[1], "consecutive_failures", 1)
  redis.call("HSET", KEYS[1], "paused_until", ARGV[4])
  if outcome == "dead" then
    redis.call("HINCRBY", KEYS[6], "dead", 1)
  else
    redis.call("HINCRBY", KEYS[5], id, 1)
    redis.call("ZADD", KEYS[3], ARGV[3], id)
  end
end
redis.call("LPUSH", KEYS[7], ARGV[5])
redis.call("LTRIM", KEYS[7], 0, tonumber(ARGV[6]) - 1)
return 1
