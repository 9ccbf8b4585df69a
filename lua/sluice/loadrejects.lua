--- The rejected rows of one sluice.load in reject mode (on_error =
-- "reject"): where each goes (the script's on_reject, the rejects file),
-- where it came from (for CSV input: the file, the line and the record
-- as it was written), how many there are, and the limits (max_rejects,
-- max_reject_ratio).
--
-- The sinks (sinks.lua) get on_reject functions from here, one per
-- connection: connection k of N took the load's rows k, k + N, ..., so
-- its row r is the load's row (r - 1) * N + k.  Each rejected row goes to
-- on_reject(values, err, row, src) - src = { source = "file:line",
-- record = "the record's text" } for CSV input, else nil - and then to
-- the rejects file (sluice.rejects).
--
-- The source of a row is kept for the last `window` rows (the rows a
-- chunk, a flush or a sync group can still hand over); the staging
-- strategies (upsert, unlogged_staging) refuse rows only at their move,
-- after all rows were read, so for them it is kept for every row (window
-- nil: memory in proportion to the input, in reject mode with CSV input
-- only).  A row handed over outside the window has no record (never
-- expected: the window is twice what can be pending).
local core = require "sluice.core"

local M = {}

local R = {}
R.__index = R

--- A new bookkeeper for load options o (checked), nconn connections,
-- `reader` (the CSV reader behind the input, or nil) and window rows.
-- resume: { rows = rows read by earlier runs, rejected = rows they set
-- aside, rejects_size = the rejects file's size at their last commit }
-- for a checkpointed load that goes on (checkpoint.lua); the file is cut
-- back to that size, so a row is written to it once across runs.
function M.new(o, nconn, columns, reader, window, resume)
  local self = setmetatable({
    on_reject = o.on_reject, max = o.max_rejects, ratio = o.max_reject_ratio,
    count = resume and resume.rejected or 0, read = resume and resume.rows or 0,
    base = resume and resume.rows or 0, -- rows read by earlier runs
    nconn = nconn, ncols = #columns, reader = reader,
    window = window or 2^52, tags = {}, records = {}, lines = {},
    putrow = {},             -- put index % window -> the load's row
    pending = { first = 1 }, -- rows refused by the load, not handed over yet
  }, R)
  if o.rejects then
    local size = resume and resume.rejects_size
    self.file = require("sluice.rejects").open(o.rejects, {
      columns = columns, truncate_to = size, append = size ~= nil or nil })
  end
  return self
end

--- The rejects file's size now (nil without a file).
function R:file_size()
  return self.file and self.file.size or nil
end

--- Row n of the load was read (after the reader gave it) and, unless
-- refused by the load, put into the sinks as their p-th row: remember its
-- source and number while it can still be handed over.
function R:note(n, p)
  self.read = n
  -- until a row is refused by the load, the p-th row put is row base +
  -- p: no need to remember it
  if p and self.shift_from then self.putrow[p % self.window] = n end
  local reader = self.reader
  if reader then
    local k = n % self.window
    self.tags[k] = n
    self.records[k] = reader:record()
    self.lines[k] = reader.line
  end
end

-- The source of row n: { source = "path:line", record = text } or nil.
function R:source(n)
  local reader = self.reader
  if not reader then return nil end
  local k = n % self.window
  if self.tags[k] == n then
    return { source = reader.path .. ":" .. self.lines[k], record = self.records[k] }
  end
  return nil
end

-- Stop the load when a limit is passed (raises).
function R:check_limits(row, err, final)
  local c, read = self.count, self.read
  local why = type(err) == "table" and ((err.sqlstate and err.sqlstate .. ": " or "")
    .. tostring(err.message)) or tostring(err)
  -- error objects: the stream passes them on as they are, and the load
  -- says in front what was committed
  if self.max and c > self.max then
    error(core.new_error { message = ("more than max_rejects = %d rows were rejected (row %d "
          .. "was rejected #%d: %s)"):format(self.max, row, c, why) }, 0)
  end
  if self.ratio and (final or read >= 1000) and c > self.ratio * read then
    error(core.new_error { message = ("%d of %d rows read were rejected (%.4g%%), more than "
          .. "max_reject_ratio = %g%s"):format(c, read, 100 * c / read, self.ratio,
                  final and "" or (" (row %d: %s)"):format(row, why)) }, 0)
  end
end

-- Hand one rejected row over: the script's on_reject, the file.
function R:deliver(values, err, row, src)
  self.count = self.count + 1
  if self.on_reject then self.on_reject(values, err, row, src) end
  if self.file then self.file(values, err, row, src) end
  self:check_limits(row, err, false)
end

--- Row n of the load is no row (the wrong width, unknown keys, a failed
-- validation): set aside before any sink saw it, with SQLSTATE code.
-- It is handed over just before the first row after it that a sink
-- hands over (or at the end), so that rows go out in row order.
function R:refuse(item, why, code, n)
  -- rows put from now on are numbered apart (until then the p-th row put
  -- is the load's row base + p)
  self.shift_from = self.shift_from or n - self.base
  self.pending[#self.pending + 1] = { item, core.new_error { sqlstate = code, message = why },
                                      n, self:source(n) }
end

-- Hand over the refused rows before row n (all: n nil).
function R:flush_pending(n)
  local p = self.pending
  while p.first <= #p and (n == nil or p[p.first][3] < n) do
    local x = p[p.first]
    p[p.first] = false
    p.first = p.first + 1
    self:deliver(x[1], x[2], x[3], x[4])
  end
end

--- The on_reject function for connection k, whose sink was opened after
-- put_base rows were put (its rows renumbered as the load's: connection
-- k of N took the rows put put_base + k, put_base + k + N, ...).
function R:handler(k, put_base)
  local nconn, ncols = self.nconn, self.ncols
  return function(values, err, row)
    if type(values) == "table" and values.n == nil then values.n = ncols end
    local p = put_base + (row - 1) * nconn + k
    local n = self.base + p
    if self.shift_from and p >= self.shift_from then n = self.putrow[p % self.window] end
    -- the stream's own message numbers its rows ("row 7, column ..."):
    -- say the load's row
    if n ~= row and type(err) == "table" and type(err.message) == "string" then
      err.message = err.message:gsub("^row " .. row .. "([,:% ])", "row " .. n .. "%1", 1)
    end
    self:flush_pending(n)
    return self:deliver(values, err, n, self:source(n))
  end
end

--- The load's rows are all in: check the ratio on the whole input and
-- close the file.  Raises a limit's error.
function R:finish()
  self:flush_pending()
  self:close()
  if self.count > 0 then self:check_limits(self.read, "", true) end
end

--- Close the rejects file (never raises).
function R:close()
  pcall(self.flush_pending, self)
  if self.file then pcall(self.file.close, self.file) end
end

return M
