#pragma once
// The Lua script every batch runs as, one EVALSHA per key group (see redis.hpp).

#include <string_view>

namespace asyncstate::detail {

// One batch of one key group. KEYS[1] is the batch marker; each operation is 7
// arguments: op, key index, zset key index, user key, value, lex range start, limit.
inline constexpr std::string_view kBatchScript = R"lua(
local writes = ARGV[1] == '1'
if writes then
  local done = redis.call('GET', KEYS[1])
  if done then return cmsgpack.unpack(done) end
end
local out = {}
local n = (#ARGV - 2) / 7
for i = 0, n - 1 do
  local b = 2 + i * 7
  local op = ARGV[b + 1]
  local k = KEYS[tonumber(ARGV[b + 2])]
  local z = KEYS[tonumber(ARGV[b + 3])]
  local uk = ARGV[b + 4]
  local r = 1
  if op == 'g' then r = redis.call('GET', k)
  elseif op == 'G' then r = redis.call('HGET', k, uk)
  elseif op == 'p' then redis.call('SET', k, ARGV[b + 5])
  elseif op == 'P' then redis.call('HSET', k, uk, ARGV[b + 5]); redis.call('ZADD', z, 0, uk)
  elseif op == 'd' then redis.call('DEL', k)
  elseif op == 'D' then redis.call('HDEL', k, uk); redis.call('ZREM', z, uk)
  elseif op == 'a' then redis.call('APPEND', k, ARGV[b + 5])
  elseif op == 'c' then redis.call('DEL', k, z)
  elseif op == 's' then
    local limit = tonumber(ARGV[b + 7])
    local names = redis.call('ZRANGEBYLEX', z, ARGV[b + 6], '+', 'LIMIT', 0, limit + 1)
    local more = 0
    if #names > limit then names[#names] = nil; more = 1 end
    local values = {}
    for j = 1, #names do values[j] = redis.call('HGET', k, names[j]) end
    r = {names, values, more}
  end
  out[#out + 1] = r
end
if writes then redis.call('SET', KEYS[1], cmsgpack.pack(out), 'EX', ARGV[2]) end
return out
)lua";

}  // namespace asyncstate::detail
