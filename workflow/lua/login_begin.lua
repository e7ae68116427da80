-- Start one login attempt for KEYS[1] (a user hash), atomically.
-- ARGV: now (epoch seconds), max attempts, lockout seconds.
-- The attempt is counted as failed before the password is checked, so parallel guesses can
-- never get past the allowance; a successful check resets the count (login_end.lua).
-- Returns {"unknown"} | {"disabled"} | {"locked", until} | {"ok", argon2 hash}.
local key = KEYS[1]
local now = tonumber(ARGV[1])
local max = tonumber(ARGV[2])
local lockout = tonumber(ARGV[3])
if redis.call("EXISTS", key) == 0 then
  return {"unknown"}
end
local f = redis.call("HMGET", key, "disabled", "locked_until", "failed", "password")
if f[1] == "1" then
  return {"disabled"}
end
local locked_until = tonumber(f[2] or "0") or 0
local failed = tonumber(f[3] or "0") or 0
if locked_until > now then
  return {"locked", tostring(locked_until)}
end
if locked_until > 0 then
  -- A lock that has run out: the account starts afresh.
  failed = 0
  redis.call("HSET", key, "locked_until", "0")
end
if failed >= max then
  -- The allowance is used up by attempts still running (or that died mid-check): lock now,
  -- so the lock is visible to operators and runs out by itself.
  locked_until = now + lockout
  redis.call("HSET", key, "locked_until", tostring(locked_until))
  return {"locked", tostring(locked_until)}
end
redis.call("HSET", key, "failed", tostring(failed + 1))
return {"ok", f[4] or ""}
