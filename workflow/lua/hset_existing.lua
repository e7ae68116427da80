-- HSET field/value pairs (ARGV) on KEYS[1] only if the hash exists: an operator command racing
-- a delete must not leave a half user behind. Returns 1 if written, 0 if there is no such key.
if redis.call("EXISTS", KEYS[1]) == 0 then
  return 0
end
redis.call("HSET", KEYS[1], unpack(ARGV))
return 1
