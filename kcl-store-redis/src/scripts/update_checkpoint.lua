-- Checkpoint under a held lease, never backwards; clears the pending
-- checkpoint and the owner switches.
-- KEYS[1] the lease hash. ARGV[1] owner, ARGV[2] generation,
-- ARGV[3] position value, ARGV[4] sub-sequence number.
-- Returns {'ok'} | {'not_found'} | {'conflict', reason}
--       | {'backwards', stored value, stored sub}.
--
-- This is the hot path (every processor checkpoint): it is sent without
-- common.lua, reads all it needs in one HMGET, compares inline, and
-- writes only what changes. Its comparison is common.lua's
-- kcl_cmp_position, unrolled.
local s = redis.call('HMGET', KEYS[1], 'generation', 'owner', 'checkpoint', 'checkpoint_sub',
  'owner_switches', 'pending_checkpoint')
if not s[1] then return {'not_found'} end
if ARGV[1] == '' or s[2] ~= ARGV[1] or s[1] ~= ARGV[2] then
  return {'conflict', 'owner or generation changed since the lease was taken'}
end
local value, sub, old, old_sub = ARGV[3], ARGV[4], s[3], s[4] or '0'
if old and not (value == old and sub == old_sub) then
  -- Rank: AT_TIMESTAMP 0 < TRIM_HORIZON 1 < LATEST 2 < digits 3 < SHARD_END 4.
  local rank = {AT_TIMESTAMP = 0, TRIM_HORIZON = 1, LATEST = 2, SHARD_END = 4}
  local r, old_r = rank[value] or 3, rank[old] or 3
  local below
  if r ~= old_r then
    below = r < old_r
  elseif r ~= 3 then
    below = false
  elseif value ~= old then
    -- Numbers of any length: shorter is smaller, then digit order (see
    -- common.lua on why `<` is digit order here).
    below = #value < #old or (#value == #old and value < old)
  else
    below = #sub < #old_sub or (#sub == #old_sub and sub < old_sub)
  end
  if below then return {'backwards', old, old_sub} end
end
if s[5] and s[5] ~= '0' then
  redis.call('HSET', KEYS[1], 'checkpoint', value, 'checkpoint_sub', sub, 'owner_switches', '0')
else
  redis.call('HSET', KEYS[1], 'checkpoint', value, 'checkpoint_sub', sub)
end
if s[6] then
  redis.call('HDEL', KEYS[1], 'pending_checkpoint', 'pending_checkpoint_sub', 'pending_state')
end
return {'ok'}
