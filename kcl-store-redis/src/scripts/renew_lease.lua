-- Renew a held lease: counter + 1, and the throughput when one is given.
-- KEYS[1] the lease hash. ARGV[1] owner, ARGV[2] generation, ARGV[3] the
-- throughput in bytes per second (decimal), or '' to keep the stored one.
-- Returns {'ok', HGETALL} | {'not_found'} | {'conflict', reason}.
local refused = kcl_fence(KEYS[1], ARGV[1], ARGV[2])
if refused then return refused end
redis.call('HINCRBY', KEYS[1], 'counter', 1)
if ARGV[3] ~= '' then
  redis.call('HSET', KEYS[1], 'throughput_bytes_per_sec', ARGV[3])
end
return {'ok', redis.call('HGETALL', KEYS[1])}
