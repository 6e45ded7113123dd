-- Withdraw a hand-off request of ARGV[3], if the lease is still held as
-- observed and the request still names ARGV[3]; counters untouched.
-- KEYS[1] the lease hash. ARGV[1] observed owner ('' for none),
-- ARGV[2] observed generation, ARGV[3] the worker that asked.
-- Returns {'ok'} | {'not_found'} | {'conflict', reason}.
local refused = kcl_fence(KEYS[1], ARGV[1], ARGV[2])
if refused then return refused end
if redis.call('HGET', KEYS[1], 'handoff_to') == ARGV[3] then
  redis.call('HDEL', KEYS[1], 'handoff_to')
end
return {'ok'}
