-- Finish one login attempt for KEYS[1] (a user hash), atomically.
-- ARGV: outcome ("ok" | "fail"), now, max attempts, lockout seconds, the hash checked,
-- a new hash ("" for none: the KDF's parameters are still current).
-- Returns the epoch second the account is locked until, or 0.
local key = KEYS[1]
if redis.call("EXISTS", key) == 0 then
  return 0
end
if ARGV[1] == "ok" then
  redis.call("HSET", key, "failed", "0")
  -- Rehash only if nobody changed the password meanwhile.
  if ARGV[6] ~= "" and redis.call("HGET", key, "password") == ARGV[5] then
    redis.call("HSET", key, "password", ARGV[6])
  end
  return 0
end
local failed = tonumber(redis.call("HGET", key, "failed") or "0") or 0
if failed >= tonumber(ARGV[3]) then
  local locked_until = tonumber(ARGV[2]) + tonumber(ARGV[4])
  redis.call("HSET", key, "locked_until", tostring(locked_until))
  return locked_until
end
return 0
