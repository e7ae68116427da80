-- Change one deal's entry in an index outside a transition, but only while the deal is still
-- at the version the caller read: a sweep acting on a stale read changes nothing.
--
-- KEYS[1] deal hash, KEYS[2] index (sorted set)
-- ARGV[1] op: "zrem" | "defer"; ARGV[2] deal id (the member); ARGV[3] expected version
--         ("0" = the deal does not exist)
-- "defer": ARGV[4] new due time (score); ARGV[5] "" or a time: move the entry only if it is
--         still due by then, so of several overlapping sweeps exactly one claims a due entry.
--         An entry not in the index stays out (the deal has left that state).
-- Returns 1 if the entry was changed, 0 if not.

local version = redis.call("HGET", KEYS[1], "version") or "0"
if version ~= ARGV[3] then return 0 end
local op = ARGV[1]
if op == "zrem" then
  return redis.call("ZREM", KEYS[2], ARGV[2])
elseif op == "defer" then
  local score = redis.call("ZSCORE", KEYS[2], ARGV[2])
  if not score then return 0 end
  if ARGV[5] ~= "" and tonumber(score) > tonumber(ARGV[5]) then return 0 end
  redis.call("ZADD", KEYS[2], "XX", ARGV[4], ARGV[2])
  return 1
end
return redis.error_reply("unknown op " .. tostring(op))
