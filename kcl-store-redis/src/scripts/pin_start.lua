-- Pin where a lease still at LATEST / AT_TIMESTAMP starts reading, under
-- the held lease; counters untouched.
-- KEYS[1] the lease hash. ARGV[1] owner, ARGV[2] generation,
-- ARGV[3] the instant in milliseconds since the Unix epoch.
-- Returns {'ok'} | {'not_found'} | {'conflict', reason}.
local refused = kcl_fence(KEYS[1], ARGV[1], ARGV[2])
if refused then return refused end
redis.call('HSET', KEYS[1], 'pinned_start', ARGV[3])
return {'ok'}
