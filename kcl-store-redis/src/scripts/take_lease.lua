-- Take a lease from an observed snapshot.
-- KEYS[1] the lease hash.
-- ARGV[1] observed counter, ARGV[2] observed generation, ARGV[3] new owner,
-- ARGV[4] the random epoch a never-taken lease (generation 0) starts at.
-- Returns {'ok', HGETALL} | {'not_found'} | {'conflict', reason}.
local stored = redis.call('HMGET', KEYS[1], 'shard_id', 'counter', 'generation', 'owner')
if not stored[1] then return {'not_found'} end
if stored[2] ~= ARGV[1] or stored[3] ~= ARGV[2] then
  return {'conflict', 'lease changed since it was observed'}
end
if stored[4] and stored[4] ~= ARGV[3] then
  redis.call('HINCRBY', KEYS[1], 'owner_switches', 1)
end
redis.call('HSET', KEYS[1], 'owner', ARGV[3])
redis.call('HINCRBY', KEYS[1], 'counter', 1)
if stored[3] == '0' then
  redis.call('HSET', KEYS[1], 'generation', ARGV[4])
else
  redis.call('HINCRBY', KEYS[1], 'generation', 1)
end
redis.call('HDEL', KEYS[1], 'handoff_to')
return {'ok', redis.call('HGETALL', KEYS[1])}
