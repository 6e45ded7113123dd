-- Record a prepared checkpoint under a held lease.
-- KEYS[1] the lease hash. ARGV[1] owner, ARGV[2] generation,
-- ARGV[3] position value, ARGV[4] sub-sequence number,
-- ARGV[5] '1' if application bytes follow, ARGV[6] the bytes.
-- Returns {'ok'} | {'not_found'} | {'conflict', reason}
--       | {'backwards', stored value, stored sub}.
local refused = kcl_fence(KEYS[1], ARGV[1], ARGV[2])
if refused then return refused end
refused = kcl_not_backwards(KEYS[1], ARGV[3], ARGV[4])
if refused then return refused end
redis.call('HSET', KEYS[1], 'pending_checkpoint', ARGV[3], 'pending_checkpoint_sub', ARGV[4])
if ARGV[5] == '1' then
  redis.call('HSET', KEYS[1], 'pending_state', ARGV[6])
else
  redis.call('HDEL', KEYS[1], 'pending_state')
end
return {'ok'}
