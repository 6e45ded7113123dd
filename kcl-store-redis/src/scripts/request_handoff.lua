-- Ask the owner of a lease to hand it to ARGV[3]; counters untouched.
-- KEYS[1] the lease hash. ARGV[1] observed owner ('' for none),
-- ARGV[2] observed generation, ARGV[3] the worker asking.
-- Returns {'ok'} | {'not_found'} | {'conflict', reason}.
local refused = kcl_fence(KEYS[1], ARGV[1], ARGV[2])
if refused then return refused end
redis.call('HSET', KEYS[1], 'handoff_to', ARGV[3])
return {'ok'}
