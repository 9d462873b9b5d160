#pragma once
// The Lua script every batch runs as, one EVALSHA per key group (see redis.hpp).

#include <string_view>

namespace asyncstate::detail {

// One batch of one key group. KEYS[1] is the key group's generation marker, KEYS[2]
// the batch marker; ARGV[1] is '1' when the batch writes, ARGV[2] the batch marker's
// TTL, ARGV[3] the job's generation; then each operation is 7 arguments: op, key index,
// zset key index, user key, value, lex range start, limit.
//
// The generation check comes first, before the batch marker: a server that lost the
// job's data (restart without persistence, FLUSHALL, failover to an empty replica) has
// lost the marker too, and the batch fails instead of reading empty state or writing
// into it. The check is inside the script, so it is atomic with the batch.
inline constexpr std::string_view kBatchScript = R"lua(
local generation = redis.call('GET', KEYS[1])
if generation ~= ARGV[3] then
  local what = generation and 'holds another generation' or 'is missing'
  return redis.error_reply('ASYNCSTATE_STATE_LOST generation marker ' .. KEYS[1] .. ' ' .. what)
end
local writes = ARGV[1] == '1'
if writes then
  local done = redis.call('GET', KEYS[2])
  if done then return cmsgpack.unpack(done) end
end
local out = {}
local n = (#ARGV - 3) / 7
for i = 0, n - 1 do
  local b = 3 + i * 7
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
if writes then redis.call('SET', KEYS[2], cmsgpack.pack(out), 'EX', ARGV[2]) end
return out
)lua";

}  // namespace asyncstate::detail
