-- Record the children of a shard under a held lease.
-- KEYS[1] the lease hash. ARGV[1] owner, ARGV[2] generation,
-- ARGV[3] the child shard ids joined by newlines ('' for none).
-- Returns {'ok'} | {'not_found'} | {'conflict', reason}.
local refused = kcl_fence(KEYS[1], ARGV[1], ARGV[2])
if refused then return refused end
if ARGV[3] == '' then
  redis.call('HDEL', KEYS[1], 'child_shard_ids')
else
  redis.call('HSET', KEYS[1], 'child_shard_ids', ARGV[3])
end
return {'ok'}
