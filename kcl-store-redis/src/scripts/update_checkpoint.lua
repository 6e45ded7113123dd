-- Checkpoint under a held lease, never backwards; clears the pending
-- checkpoint and the owner switches.
-- KEYS[1] the lease hash. ARGV[1] owner, ARGV[2] generation,
-- ARGV[3] position value, ARGV[4] sub-sequence number.
-- Returns {'ok'} | {'not_found'} | {'conflict', reason}
--       | {'backwards', stored value, stored sub}.
local refused = kcl_fence(KEYS[1], ARGV[1], ARGV[2])
if refused then return refused end
refused = kcl_not_backwards(KEYS[1], ARGV[3], ARGV[4])
if refused then return refused end
redis.call('HSET', KEYS[1], 'checkpoint', ARGV[3], 'checkpoint_sub', ARGV[4], 'owner_switches', '0')
redis.call('HDEL', KEYS[1], 'pending_checkpoint', 'pending_checkpoint_sub', 'pending_state')
return {'ok'}
