-- Helpers prepended to every script of kcl-store-redis (each script is sent
-- as this file followed by its own body, so each is one self-contained
-- EVALSHA).
--
-- A position is two strings: a value (a sentinel name or the decimal digits
-- of a sequence number) and a sub-sequence number (decimal digits). Both
-- are compared as numbers of any length: never tonumber(), which would
-- round a 56-digit sequence number to a double.

local function kcl_rank(value)
  if value == 'AT_TIMESTAMP' then return 0 end
  if value == 'TRIM_HORIZON' then return 1 end
  if value == 'LATEST' then return 2 end
  if value == 'SHARD_END' then return 4 end
  return 3
end

-- Two normalized decimal digit strings compared as numbers: -1, 0 or 1.
-- Shorter is smaller; equal lengths compare as strings, which for digits
-- is numeric order. (Lua's `<` uses the server's LC_COLLATE, which Redis
-- takes from its environment; every locale collates the digits 0-9 in
-- numeric order, so on equal-length digit strings it is byte order.)
local function kcl_cmp_digits(a, b)
  if a == b then return 0 end
  local la, lb = #a, #b
  if la ~= lb then
    if la < lb then return -1 else return 1 end
  end
  if a < b then return -1 else return 1 end
end

-- Positions compared in the KCL order: AT_TIMESTAMP < TRIM_HORIZON <
-- LATEST < any sequence number (then sub-sequence number) < SHARD_END.
local function kcl_cmp_position(value_a, sub_a, value_b, sub_b)
  local ra, rb = kcl_rank(value_a), kcl_rank(value_b)
  if ra ~= rb then
    if ra < rb then return -1 else return 1 end
  end
  if ra ~= 3 then return 0 end
  local c = kcl_cmp_digits(value_a, value_b)
  if c ~= 0 then return c end
  return kcl_cmp_digits(sub_a or '0', sub_b or '0')
end

-- Whether the lease at `key` is held by `owner` at `generation`. Returns
-- nil when it is, else the reply to return ({'not_found'} or
-- {'conflict', reason}).
local function kcl_fence(key, owner, generation)
  local stored = redis.call('HMGET', key, 'shard_id', 'owner', 'generation')
  if not stored[1] then return {'not_found'} end
  if owner == '' or stored[2] ~= owner or stored[3] ~= generation then
    return {'conflict', 'owner or generation changed since the lease was taken'}
  end
  return nil
end

-- The checkpoint stored in hash `key`, refusing (value, sub) below it:
-- nil when the new position is not below, else the reply to return.
local function kcl_not_backwards(key, value, sub)
  local stored = redis.call('HMGET', key, 'checkpoint', 'checkpoint_sub')
  if stored[1] and kcl_cmp_position(value, sub, stored[1], stored[2]) < 0 then
    return {'backwards', stored[1], stored[2] or '0'}
  end
  return nil
end

