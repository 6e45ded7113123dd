-- Create a lease unless one exists.
-- KEYS[1] the lease hash, KEYS[2] the application's lease index set.
-- ARGV[1] the shard id, ARGV[2..] the lease's field/value pairs.
-- Returns 1 if created, 0 if a lease was there (left untouched).
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV, 2))
redis.call('SADD', KEYS[2], ARGV[1])
return 1
