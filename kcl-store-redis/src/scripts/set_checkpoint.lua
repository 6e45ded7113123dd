-- CheckpointStore: set a shard's checkpoint, never backwards.
-- KEYS[1] the shard's checkpoint hash. ARGV[1] position value,
-- ARGV[2] sub-sequence number.
-- Returns {'ok'} | {'backwards', stored value, stored sub}.
local refused = kcl_not_backwards(KEYS[1], ARGV[1], ARGV[2])
if refused then return refused end
redis.call('HSET', KEYS[1], 'checkpoint', ARGV[1], 'checkpoint_sub', ARGV[2])
return {'ok'}
