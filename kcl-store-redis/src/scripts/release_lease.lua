-- Release a held lease to nobody (ARGV[3] == '') or hand it to a worker.
-- KEYS[1] the lease hash. ARGV[1] owner, ARGV[2] generation, ARGV[3] to.
-- Returns {'ok'} | {'not_found'} | {'conflict', reason}.
local refused = kcl_fence(KEYS[1], ARGV[1], ARGV[2])
if refused then return refused end
if ARGV[3] == '' then
  redis.call('HDEL', KEYS[1], 'owner')
else
  if ARGV[3] ~= ARGV[1] then
    redis.call('HINCRBY', KEYS[1], 'owner_switches', 1)
  end
  redis.call('HSET', KEYS[1], 'owner', ARGV[3])
end
redis.call('HINCRBY', KEYS[1], 'counter', 1)
redis.call('HINCRBY', KEYS[1], 'generation', 1)
redis.call('HDEL', KEYS[1], 'handoff_to')
return {'ok'}
