-- Renew (ARGV[1] = "renew", for ARGV[3] ms) or release ("release") a webhook's delivery lease,
-- only if KEYS[1] still holds this task's token ARGV[2]. Returns 1 if it did, else 0.
if redis.call("GET", KEYS[1]) ~= ARGV[2] then
  return 0
end
if ARGV[1] == "renew" then
  redis.call("PEXPIRE", KEYS[1], ARGV[3])
else
  redis.call("DEL", KEYS[1])
end
return 1
