-- One atomic deal transition, or a chain of them: compare-and-set on the deal's version,
-- write its fields, append the events, and apply the index/limit/lock operations that go
-- with them. Every check runs before any write, so a refused transition changes nothing.
--
-- KEYS[1] deal hash, KEYS[2] event list, KEYS[3..] keys named by the operations.
-- ARGV: expected_version ("0" = create), expected_state, nevents, event_json*, nfields,
--       {field, value}*, nops, {op, args...}* with the op arities below (first arg is always
--       a KEYS index). The version goes up by one per event.
-- Returns {"OK", new_version, flagged} | {"CONFLICT", version, state} | {"LIMIT", key_index}
--       | {"LOCKED", key_index, holder} | {"EXPECTED", key_index}
-- The op "expect" refuses (EXPECTED) unless its key holds the given value: a fact the caller
-- acted on without reading it in this step (a cached API token's record) is checked here.
-- flagged is 1 if a "flag" op set its key (SET NX EX), else 0.
-- The op "feed" writes the event (ARGV-given, without its field changes) to a bank's feed
-- stream; see workflow/feed.py. Its backfill n > 0 first copies the deal's log but for its
-- last n entries (1: the event itself; more: it and the chain's events after it).

local unpack = unpack or table.unpack
local ARITY = {zadd = 3, zrem = 2, reserve = 5, release = 3, shrink = 4, lock = 3, unlock = 2,
               rpush = 2, hincr = 3, sadd_count = 4, feed = 6, flag = 2, expect = 2}

local expected = ARGV[1]
local expected_state = ARGV[2]
local nevents = tonumber(ARGV[3])
local first_field = 5 + nevents
local nfields = tonumber(ARGV[first_field - 1])
local pos = first_field + 2 * nfields
local nops = tonumber(ARGV[pos])
pos = pos + 1

local ops = {}
for _ = 1, nops do
  local name = ARGV[pos]
  local n = ARITY[name]
  if not n then return redis.error_reply("unknown op " .. tostring(name)) end
  local args = {}
  for j = 1, n do args[j] = ARGV[pos + j] end
  ops[#ops + 1] = {name, args}
  pos = pos + n + 1
end

-- compare-and-set
local current = redis.call("HMGET", KEYS[1], "version", "state")
if expected == "0" then
  if current[1] then return {"CONFLICT", current[1], current[2]} end
elseif current[1] ~= expected or current[2] ~= expected_state then
  return {"CONFLICT", current[1] or "0", current[2] or ""}
end

-- checks of the operations that can refuse
for _, op in ipairs(ops) do
  local name, a = op[1], op[2]
  if name == "reserve" then
    -- a: hash_idx, total_idx, member, cents, cap_cents
    local key = KEYS[tonumber(a[1])]
    if redis.call("HEXISTS", key, a[3]) == 0 then
      local total = tonumber(redis.call("GET", KEYS[tonumber(a[2])]) or "0")
      if total + tonumber(a[4]) > tonumber(a[5]) then return {"LIMIT", a[1]} end
    end
  elseif name == "lock" then
    local holder = redis.call("GET", KEYS[tonumber(a[1])])
    if holder and holder ~= a[2] then return {"LOCKED", a[1], holder} end
  elseif name == "expect" then
    if redis.call("GET", KEYS[tonumber(a[1])]) ~= a[2] then return {"EXPECTED", a[1]} end
  end
end

-- writes
local new_version = tostring(tonumber(expected) + nevents)
local hset = {"HSET", KEYS[1], "version", new_version}
for i = 0, nfields - 1 do
  hset[#hset + 1] = ARGV[first_field + 2 * i]
  hset[#hset + 1] = ARGV[first_field + 1 + 2 * i]
end
redis.call(unpack(hset))
redis.call("RPUSH", KEYS[2], unpack(ARGV, 4, 3 + nevents))

local flagged = 0
for _, op in ipairs(ops) do
  local name, a = op[1], op[2]
  local key = KEYS[tonumber(a[1])]
  if name == "zadd" then
    redis.call("ZADD", key, a[2], a[3])
  elseif name == "zrem" then
    redis.call("ZREM", key, a[2])
  elseif name == "reserve" then
    if redis.call("HSETNX", key, a[3], a[4]) == 1 then
      redis.call("INCRBY", KEYS[tonumber(a[2])], a[4])
    end
  elseif name == "release" then
    local held = redis.call("HGET", key, a[3])
    if held then
      redis.call("HDEL", key, a[3])
      redis.call("DECRBY", KEYS[tonumber(a[2])], held)
    end
  elseif name == "shrink" then
    -- a: hash_idx, total_idx, member, cents: what the deal holds becomes at most ``cents``
    -- (a reservation turned into a smaller use, a use paid down); it never grows here.
    local held = tonumber(redis.call("HGET", key, a[3]) or "0")
    local keep = tonumber(a[4])
    if held > keep then
      if keep > 0 then
        redis.call("HSET", key, a[3], a[4])
      else
        redis.call("HDEL", key, a[3])
      end
      redis.call("DECRBY", KEYS[tonumber(a[2])], held - keep)
    end
  elseif name == "hincr" then
    -- a: hash_idx, field, delta: a counter; a field back at 0 is removed (HLEN counts)
    if redis.call("HINCRBY", key, a[2], a[3]) == 0 then redis.call("HDEL", key, a[2]) end
  elseif name == "sadd_count" then
    -- a: set_idx, member, hash_idx, field: count the member in the hash's field once ever
    if redis.call("SADD", key, a[2]) == 1 then
      redis.call("HINCRBY", KEYS[tonumber(a[3])], a[4], 1)
    end
  elseif name == "lock" then
    -- a: key_idx, holder, ttl_seconds (0 = held until unlocked)
    if tonumber(a[3]) > 0 then
      redis.call("SET", key, a[2], "EX", a[3])
    else
      redis.call("SET", key, a[2])
    end
  elseif name == "rpush" then
    redis.call("RPUSH", key, a[2])
  elseif name == "flag" then
    -- a: key_idx, ttl_seconds: set if unset; the caller acts only if this call set it
    if redis.call("SET", key, "1", "NX", "EX", a[2]) then flagged = 1 end
  elseif name == "unlock" then
    if redis.call("GET", key) == a[2] then redis.call("DEL", key) end
  elseif name == "feed" then
    -- a: stream_idx, trimmed_idx, deal_id, event_json, backfill, retention_ms. With backfill
    -- n > 0 the deal's earlier events go first (the bank was just offered the deal): its log
    -- before this event (the last n entries are it and the chain's later events), without
    -- their field changes, in order.
    local backfill = tonumber(a[5])
    if backfill > 0 then
      for _, raw in ipairs(redis.call("LRANGE", KEYS[2], 0, -1 - backfill)) do
        local earlier = cjson.decode(raw)
        earlier["set"] = nil
        redis.call("XADD", key, "*", "deal", a[3], "event", cjson.encode(earlier))
      end
    end
    local id = redis.call("XADD", key, "*", "deal", a[3], "event", a[4])
    -- Retention, against the stream's own clock: remove the entries older than the newest
    -- minus retention_ms, exactly, and remember the newest one removed (a cursor before it
    -- has missed events). Usually nothing is that old: one XRANGE of the first entry.
    local horizon = tonumber(string.match(id, "^%d+")) - tonumber(a[6])
    local first = redis.call("XRANGE", key, "-", "+", "COUNT", 1)[1]
    if tonumber(string.match(first[1], "^%d+")) < horizon then
      local minid = string.format("%.0f", horizon) .. "-0"
      local last_gone = redis.call("XREVRANGE", key, "(" .. minid, "-", "COUNT", 1)[1]
      redis.call("XTRIM", key, "MINID", minid)
      redis.call("SET", KEYS[tonumber(a[2])], last_gone[1])
    end
  end
end

return {"OK", new_version, flagged}
