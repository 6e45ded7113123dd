-- Renew a held lease: counter + 1.
-- KEYS[1] the lease hash. ARGV[1] owner, ARGV[2] generation.
-- Returns {'ok', HGETALL} | {'not_found'} | {'conflict', reason}.
local refused = kcl_fence(KEYS[1], ARGV[1], ARGV[2])
if refused then return refused end
redis.call('HINCRBY', KEYS[1], 'counter', 1)
return {'ok', redis.call('HGETALL', KEYS[1])}
