-- Administrator's reset: set the checkpoint anywhere, clear the pending
-- checkpoint and the pinned start, free the lease and fence out its owner.
-- KEYS[1] the lease hash. ARGV[1] position value, ARGV[2] sub-sequence.
-- Returns {'ok'} | {'not_found'}.
if redis.call('EXISTS', KEYS[1]) == 0 then return {'not_found'} end
redis.call('HSET', KEYS[1], 'checkpoint', ARGV[1], 'checkpoint_sub', ARGV[2])
redis.call('HDEL', KEYS[1], 'pending_checkpoint', 'pending_checkpoint_sub', 'pending_state',
  'owner', 'handoff_to', 'pinned_start')
redis.call('HINCRBY', KEYS[1], 'counter', 1)
redis.call('HINCRBY', KEYS[1], 'generation', 1)
return {'ok'}
