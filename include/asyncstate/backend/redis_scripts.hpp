#pragma once
// The Lua script every batch runs as, one EVALSHA per key group (see redis.hpp).

#include <string_view>

namespace asyncstate::detail {

// One batch of one key group. KEYS[1] is the key group's generation marker, KEYS[2]
// the batch marker, KEYS[3] (when ARGV[4] is '1') the key group's undo hash of the
// current checkpoint epoch; ARGV[1] is '1' when the batch writes, ARGV[2] the batch
// marker's TTL, ARGV[3] the job's generation, ARGV[4] whether writes keep pre-images;
// then each operation is 7 arguments: op, key index, zset key index, user key, value,
// lex range start, limit.
//
// Pre-images (lightweight checkpoints, see redis.hpp). Before the first write of a key
// (or of a map entry) in an epoch, the script keeps what it held then in the undo hash:
// field 's'..key for a string key, 'e'..len(hash key)..':'..hash key..user key for a map
// entry; value '1'..bytes, or '0' when it was absent. Later writes in the same epoch
// keep nothing more, so the hash holds the state as of the epoch's start for exactly
// the keys written since, and it is written in the same script as the write.
// Operation 'r' rolls an undo hash back (writes every pre-image, then deletes the
// hash) and answers how many it restored: recovery sends it with recording off, one
// 'r' per epoch newest first, so the oldest epoch's pre-image is the one left.
//
// Commit markers (job-level, in the meta slot; recording off). 'x' fails the script
// when its key exists: a commit refuses to run while a rollback intent is open. 'C'
// commits: key = the last marker, zset key = the history hash of older retained
// markers, user key = the new id, value = the new marker, lex start = the previous id,
// limit = how many checkpoints are retained; it moves the previous marker into the
// history, writes the new one and drops the history's ids that fell out of retention.
// 'S' comes first in a commit and skips its 'C' when the last marker already has the new
// id: user key = the id field as the marker serializes it, value = the marker naming
// every key group. That happens when the commit is resent, and when the subtasks of a
// parallel job commit one checkpoint each through its own connection: the last marker
// is then replaced (every key group, since each subtask wrote its own) and the history
// keeps what it held, instead of taking a marker of the same id as the previous one.
// 'F' finishes a rollback: user key = the target id, whose marker (from the history)
// becomes the last one; the history keeps only older ids.
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
local undo = ARGV[4] == '1' and KEYS[3] or nil
local function keep(field, before)
  if redis.call('HEXISTS', undo, field) == 0 then
    redis.call('HSET', undo, field, before and ('1' .. before) or '0')
  end
end
local function keepString(k)
  if undo then keep('s' .. k, redis.call('GET', k)) end
end
local function keepEntry(h, uk)
  if undo then keep('e' .. #h .. ':' .. h .. uk, redis.call('HGET', h, uk)) end
end
local function keepMap(h)
  if undo then
    local all = redis.call('HGETALL', h)
    for j = 1, #all, 2 do keep('e' .. #h .. ':' .. h .. all[j], all[j + 1]) end
  end
end
local function rollBack(u)
  local all = redis.call('HGETALL', u)
  for j = 1, #all, 2 do
    local f, before = all[j], all[j + 1]
    local present = string.sub(before, 1, 1) == '1'
    if string.sub(f, 1, 1) == 's' then
      local k = string.sub(f, 2)
      if present then redis.call('SET', k, string.sub(before, 2)) else redis.call('DEL', k) end
    else
      local colon = string.find(f, ':', 2, true)
      local len = tonumber(string.sub(f, 2, colon - 1))
      local h = string.sub(f, colon + 1, colon + len)
      local uk = string.sub(f, colon + len + 1)
      local z = string.sub(h, 1, -2) .. 'z'
      if present then
        redis.call('HSET', h, uk, string.sub(before, 2)); redis.call('ZADD', z, 0, uk)
      else
        redis.call('HDEL', h, uk); redis.call('ZREM', z, uk)
      end
    end
  end
  redis.call('DEL', u)
  return #all / 2
end
local out = {}
local committed = false
local n = (#ARGV - 4) / 7
for i = 0, n - 1 do
  local b = 4 + i * 7
  local op = ARGV[b + 1]
  local k = KEYS[tonumber(ARGV[b + 2])]
  local z = KEYS[tonumber(ARGV[b + 3])]
  local uk = ARGV[b + 4]
  local r = 1
  if op == 'g' then r = redis.call('GET', k)
  elseif op == 'G' then r = redis.call('HGET', k, uk)
  elseif op == 'p' then keepString(k); redis.call('SET', k, ARGV[b + 5])
  elseif op == 'P' then keepEntry(k, uk); redis.call('HSET', k, uk, ARGV[b + 5]); redis.call('ZADD', z, 0, uk)
  elseif op == 'd' then keepString(k); redis.call('DEL', k)
  elseif op == 'D' then keepEntry(k, uk); redis.call('HDEL', k, uk); redis.call('ZREM', z, uk)
  elseif op == 'a' then keepString(k); redis.call('APPEND', k, ARGV[b + 5])
  elseif op == 'c' then
    if k == z then keepString(k) else keepMap(k) end
    redis.call('DEL', k, z)
  elseif op == 'r' then r = rollBack(k)
  elseif op == 'x' then
    if redis.call('EXISTS', k) == 1 then
      return redis.error_reply('ASYNCSTATE_ROLLBACK_PENDING ' .. k .. ' holds the target of an unfinished rollback')
    end
  elseif op == 'S' then
    local last = redis.call('GET', k)
    if last and string.find(last, uk, 1, true) then
      committed = true
      redis.call('SET', k, ARGV[b + 5])
    end
  elseif op == 'C' then
    local last = redis.call('GET', k)
    if not committed and last ~= ARGV[b + 5] then
      if last then redis.call('HSET', z, ARGV[b + 6], last) end
      redis.call('SET', k, ARGV[b + 5])
    end
    local oldest = tonumber(uk) - tonumber(ARGV[b + 7])
    for _, id in ipairs(redis.call('HKEYS', z)) do
      if tonumber(id) <= oldest then redis.call('HDEL', z, id) end
    end
  elseif op == 'F' then
    local target = redis.call('HGET', z, uk)
    if target then redis.call('SET', k, target) end
    if uk == '0' then redis.call('DEL', k) end
    for _, id in ipairs(redis.call('HKEYS', z)) do
      if tonumber(id) >= tonumber(uk) then redis.call('HDEL', z, id) end
    end
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
