-- The strings Python and the scripts both build or read, side by side with their
-- Python twins in outbox.core.store.codec (a change to a format changes both).

-- A chunk's attempt in the rate-limit windows: "<chunk>#<attempt>" (the last '#'
-- splits, so a chunk id may hold any character).
local function attempt_member(chunk_id, attempt) return chunk_id .. '#' .. attempt end

-- The chunk id of a member, or nil for a request that is no chunk's.
local function member_chunk(member) return string.match(member, '^(.*)#%d+$') end

-- A place in a lane's line: chunk id, worker ('' for a thread-less wait) and the token
-- of its wait, tab-separated.
local function line_entry(chunk_id, worker, token)
  return chunk_id .. '\t' .. worker .. '\t' .. token
end

local function read_line_entry(raw)
  local c, w, t = string.match(raw, '^([^\t]*)\t([^\t]*)\t([^\t]*)$')
  return {c = c, w = w, t = t}
end

-- A wake list's message: "<member> <slot time> <granted at>" for a slot granted (or
-- moved), or "<member> <word>" (held, canceled, ...); IN_LINE stands for the member of
-- a sender still in line.
local IN_LINE = '-'

local function wake_grant(member, at, now)
  return member .. ' ' .. string.format('%.6f', at) .. ' ' .. string.format('%.6f', now)
end

local function wake_word(member, word) return member .. ' ' .. word end
